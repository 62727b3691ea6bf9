"""WebSocket routes. The live monitor stream is added by the live-monitoring work."""

websocket_urlpatterns: list = []
