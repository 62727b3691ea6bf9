"""Under ASGI the whole middleware stack runs in one mode: no middleware is wrapped in a thread hop."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.http import StreamingHttpResponse
from django.urls import path


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


class _CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(1, thread_name_prefix="request")
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return super().submit(*args, **kwargs)


def _scope(path: str) -> dict:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}


async def _stream_forever(request):
    async def events():
        yield b"data: first\n\n"
        while True:
            await asyncio.sleep(0.01)
            yield b": keep-alive\n\n"

    return StreamingHttpResponse(events(), content_type="text/event-stream")


urlpatterns = [path("stream-forever", _stream_forever)]


def test_a_whole_answer_takes_one_hop_and_is_closed_on_the_request_thread():
    # Django's handler hops to the request's thread three times a request (request_started, the
    # chain, closing the answer); the portal's does all three in one (docs/PERFORMANCE.md, "The fixed
    # cost of a request, round three"). request_finished still fires, on the request's thread.
    from leadops.handler import OneHopASGIHandler

    handler = OneHopASGIHandler()
    executor = _CountingExecutor()
    handler._idle.append(executor)
    fired: dict[str, int] = {}

    def started(**kwargs):
        fired["started"] = threading.get_ident()

    def finished(**kwargs):
        fired["finished"] = threading.get_ident()

    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.start":
            assert "finished" in fired   # closed before it is sent: its bytes were already whole

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        asyncio.run(handler(_scope("/api/v1/no-such-path"), receive, send))
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert sent[0]["status"] == 404 and b"not_found" in sent[1]["body"]
    assert executor.submitted == 1
    assert fired["started"] == fired["finished"] != threading.get_ident()


def test_a_stream_ends_when_its_client_goes_away_and_is_closed(settings):
    # The monitor's event stream never ends by itself: a client that hangs up must end it, as
    # under Django's own handler, and the answer is closed afterwards (request_finished).
    from leadops.handler import OneHopASGIHandler

    settings.ROOT_URLCONF = __name__
    handler = OneHopASGIHandler()
    finished: list[bool] = []
    sent: list[dict] = []

    def note(**kwargs):
        finished.append(True)

    async def serve() -> None:
        first_chunk = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)
            if message.get("body"):
                first_chunk.set()

        await asyncio.wait_for(handler(_scope("/stream-forever"), receive, send), timeout=5)

    request_finished.connect(note)
    try:
        asyncio.run(serve())
    finally:
        request_finished.disconnect(note)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"data: first\n\n"
    assert finished == [True]
