"""Under ASGI the whole middleware stack runs in one mode: no middleware is wrapped in a thread hop."""

from __future__ import annotations

import logging

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler


def _adapted(caplog, settings, handler) -> list[str]:
    # Django logs every adaptation it makes while building the stack, in DEBUG only.
    settings.DEBUG = True
    with caplog.at_level(logging.DEBUG, logger="django.request"):
        handler.load_middleware(is_async=isinstance(handler, ASGIHandler))
    return [record.getMessage() for record in caplog.records if "adapted for middleware" in record.getMessage()]


def test_no_middleware_is_adapted_under_asgi(caplog, settings):
    # A sync-only middleware anywhere in the list would make Django hop between the event loop and
    # a worker thread around it on every request (docs/PERFORMANCE.md, "What a request costs").
    assert _adapted(caplog, settings, ASGIHandler()) == []


def test_no_middleware_is_adapted_under_wsgi(caplog, settings):
    assert _adapted(caplog, settings, WSGIHandler()) == []


def test_the_served_asgi_handler_builds_the_chain_sync_and_enters_it_once():
    # Django's MiddlewareMixin in async mode runs each process_request/process_response through
    # sync_to_async: a dozen hand-offs a request. The portal's handler builds the chain in sync mode
    # and wraps the whole of it in one hand-off (leadops/handler.py; docs/PERFORMANCE.md, "The fixed
    # cost of a request").
    from asgiref.sync import SyncToAsync

    from leadops.handler import OneHopASGIHandler

    handler = OneHopASGIHandler()
    chain = handler._middleware_chain
    assert isinstance(chain, SyncToAsync)
    layer, depth = chain.func, 0
    while hasattr(layer, "get_response"):
        assert not getattr(layer, "async_mode", False), type(layer).__name__
        assert not getattr(layer, "is_async", False), type(layer).__name__
        layer, depth = layer.get_response, depth + 1
    assert depth >= 10  # every middleware of settings.MIDDLEWARE was walked


def test_the_asgi_entry_point_serves_the_one_hop_handler():
    import leadops.asgi
    from leadops.handler import OneHopASGIHandler

    served = leadops.asgi.django_asgi_app
    # In DEBUG the handler sits behind the static files handler (leadops/asgi.py).
    assert isinstance(getattr(served, "application", served), OneHopASGIHandler)


def test_the_handler_lends_each_request_an_idle_thread_instead_of_starting_one():
    # Django's handler starts and joins a thread per request (docs/PERFORMANCE.md, "The heartbeat,
    # round two"); the portal's handler runs one request at a time on each of its idle threads.
    import asyncio
    import threading

    from django.core.signals import request_started

    from leadops.handler import OneHopASGIHandler

    handler = OneHopASGIHandler()
    seen: list[int] = []

    def note(**kwargs):
        seen.append(threading.get_ident())

    async def one_request() -> int:
        scope = {"type": "http", "method": "GET", "path": "/api/v1/no-such-path", "raw_path": b"/api/v1/no-such-path",
                 "query_string": b"", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80)}
        messages = [{"type": "http.request", "body": b"", "more_body": False}]
        sent: list[dict] = []

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        await handler(scope, receive, send)
        return sent[0]["status"]

    async def two_requests() -> list[int]:
        return [await one_request(), await one_request()]

    request_started.connect(note)
    try:
        statuses = asyncio.run(two_requests())
    finally:
        request_started.disconnect(note)
    assert statuses == [404, 404]
    assert len(seen) == 2 and seen[0] == seen[1] != threading.get_ident()
    assert len(handler._idle) == 1
