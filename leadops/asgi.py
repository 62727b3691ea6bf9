"""ASGI entry point served by daphne: HTTP through Django, WebSockets through Channels."""

import gc
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

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything built so far (Django, the apps, URL patterns, phonenumbers' metadata) lives as long as
# the process. Freezing it keeps the cyclic garbage collector from scanning it again and again:
# a 500-lead report creates thousands of short-lived containers, and without this each report paid
# several milliseconds of full collections over objects that can never be garbage. Young
# collections also run less often; request objects are freed by reference counting anyway.
gc.freeze()
gc.set_threshold(10_000, 20, 20)
