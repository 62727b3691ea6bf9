"""ASGI entry point served by daphne: HTTP through Django, WebSockets through Channels (docs/DEPLOY.md)."""

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")

from leadops.handler import get_one_hop_asgi_application

# Django's request path in one thread hop per request (leadops/handler.py).
django_asgi_app: Any = get_one_hop_asgi_application()

from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # daphne does not serve static files; in development the admin's CSS and JS come from here.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from leadops.heartbeat_lane import HeartbeatLane  # noqa: E402
from leadops.live_publish import publishing  # noqa: E402
from leadops.routing import websocket_urlpatterns  # noqa: E402
from leadops.servers import cache_content_type_parse, freeze_startup_heap  # noqa: E402
from queueing.long_poll import LongPollMiddleware  # noqa: E402

# Monitor events are pushed from the event loop, not from the request's thread (leadops/live_publish.py).
application = publishing(ProtocolTypeRouter(
    {
        # Long polls wait in the event loop, not in a Django thread (docs/API.md, "Long poll"); an
        # accepted heartbeat is answered on the loop (docs/PERFORMANCE.md, "The heartbeat on the loop").
        "http": HeartbeatLane(LongPollMiddleware(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
))

freeze_startup_heap()
cache_content_type_parse()
