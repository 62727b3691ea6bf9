"""The ASGI handler that runs Django's request path in one thread hop (docs/PERFORMANCE.md,
"The fixed cost of a request").

Django's `ASGIHandler` builds the middleware chain in async mode. Every Django middleware built on
`MiddlewareMixin` (security, sessions, common, CSRF, auth, messages, clickjacking) then runs its
`process_request` and `process_response` through `sync_to_async` on each request: about a dozen
hand-offs between the event loop and the request's thread, each costing the loop more CPU than the
middleware's own work, for views that are sync anyway. This handler builds the chain in sync mode
and enters it once; the few async views (the monitor's event stream) are run by Django's own
adapter, and the streaming answer is still sent from the event loop.

Django also starts a new thread for every request (its `ThreadSensitiveContext` makes a one-thread
executor per request and shuts it down at the end). This handler lends each request an idle
one-thread executor instead and takes it back afterwards: still one thread per request at a time,
so thread-local state (the database connection) behaves as before, without a thread's start and
join per request ("The heartbeat, round two").

Around the chain, Django's `handle` hops to the request's thread twice more (the `request_started`
signal before it, closing the answer after it) and runs each request as two tasks, one of them
listening for a disconnect. This handler does the signal, the request, the chain and, for an answer
already whole in memory, its closing in the one hop, then sends the answer from the loop. A
streaming answer is sent as Django sends it, with the disconnect listener, and closed afterwards
("The fixed cost of a request, round three").
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import HttpResponseBase
from django.urls import set_script_prefix, set_urlconf
from django.utils.log import log_response

# Idle request threads kept for the next requests; more than this many at once start and end their
# own, as Django's handler does for every request.
IDLE_THREADS_KEPT = 64


class OneHopASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain: Any = self._middleware_chain  # type: ignore[has-type]
        self._sync_chain = chain
        self._middleware_chain = sync_to_async(chain, thread_sensitive=True)
        self._respond_in_thread = sync_to_async(self._respond, thread_sensitive=True)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response = await self._respond_in_thread(scope, body_file)
            if not response.streaming:
                await self.send_response(response, send)    # a gone client's server drops it
                return
            await self._send_streaming(response, receive, send)
        finally:
            body_file.close()

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """On the request's thread: what Django's handler does in three hops, in one."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, refused = self.create_request(scope, body_file)
        response: Any  # Django's private response attributes are not in its stubs
        if request is None:
            response = refused
        else:
            set_urlconf(settings.ROOT_URLCONF)
            response = self._sync_chain(request)
            response._resource_closers.append(request.close)
            response._handler_class = self.__class__
            if response.status_code >= 400:
                log_response("%s: %s", response.reason_phrase, request.path, response=response,
                             request=request)
        if not response.streaming:
            # Its bytes are in memory: closing it now (request_finished, which hands the database
            # connection back) changes nothing the client receives.
            response.close()
        return response

    async def _send_streaming(self, response: HttpResponseBase, receive: Any, send: Any) -> None:
        # As Django does: a client that goes away ends the stream (the monitor's event stream).
        listener = asyncio.create_task(self.listen_for_disconnect(receive))
        sender = asyncio.create_task(self.send_response(response, send))
        try:
            await asyncio.wait((listener, sender), return_when=asyncio.FIRST_COMPLETED)
            for task in (listener, sender):
                if task.done():
                    with contextlib.suppress(RequestAborted, asyncio.CancelledError):
                        task.result()
                else:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            await sync_to_async(response.close, thread_sensitive=True)()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="request")
        try:
            # The request's thread-sensitive calls (signals, the chain, closing the answer) all run
            # on this executor's one thread, as they would on the thread Django makes per request.
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        except BaseException:
            # A cancelled request may leave work running on the thread: no later request waits for it.
            executor.shutdown(wait=False)
            raise
        if len(self._idle) < IDLE_THREADS_KEPT:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)


def get_one_hop_asgi_application() -> OneHopASGIHandler:
    """`django.core.asgi.get_asgi_application`, with the one-hop handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()
