"""ASGI entry point served by daphne: HTTP through Django, WebSockets through Channels (docs/DEPLOY.md)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.DEBUG:
    # daphne does not serve static files; in development the admin's CSS and JS come from here.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from leadops.routing import websocket_urlpatterns  # noqa: E402
from leadops.servers import freeze_startup_heap  # noqa: E402
from queueing.long_poll import LongPollMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Long polls wait in the event loop, not in a Django thread (docs/API.md, "Long poll").
        "http": LongPollMiddleware(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

freeze_startup_heap()
