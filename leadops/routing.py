"""WebSocket routes (leadops/asgi.py wraps them in AuthMiddlewareStack + AllowedHostsOriginValidator)."""

from django.urls import path

from leadops.live import MonitorConsumer

websocket_urlpatterns: list = [
    path("ws/monitor/", MonitorConsumer.as_asgi()),
]
