"""WSGI entry point (the portal is served by daphne through ASGI; this is for tooling)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")
application = get_wsgi_application()
