"""WSGI entry point: for tooling and for the WSGI servers `make bench` compares (gunicorn, granian).

Production runs the ASGI entry point under daphne (docs/DEPLOY.md): it measured the least CPU per
request, and WebSockets (`/ws/`) and the SSE stream (`/api/v1/monitor/events`) need ASGI anyway.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")

from leadops.servers import freeze_startup_heap

application = get_wsgi_application()

freeze_startup_heap()
