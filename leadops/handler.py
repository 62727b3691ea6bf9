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
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

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
        self._middleware_chain = sync_to_async(chain, thread_sensitive=True)

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
