"""WSGI entry point: the worker API and the admin under gunicorn in production (docs/DEPLOY.md).

WebSockets (`/ws/`) and the SSE stream (`/api/v1/monitor/events`) need the ASGI entry point
(`leadops/asgi.py`, daphne): the proxy sends those paths there.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")

from leadops.proxy import ForwardedFor
from leadops.servers import freeze_startup_heap

# The client address from the proxy's X-Forwarded-For, as daphne's --proxy-headers does (leadops/proxy.py).
application = ForwardedFor(get_wsgi_application())

freeze_startup_heap()
