"""The ASGI handler that runs Django's request path in one thread hop (docs/PERFORMANCE.md,
"The fixed cost of a request").

Django's `ASGIHandler` builds the middleware chain in async mode. Every Django middleware built on
`MiddlewareMixin` (security, sessions, common, CSRF, auth, messages, clickjacking) then runs its
`process_request` and `process_response` through `sync_to_async` on each request: about a dozen
hand-offs between the event loop and the request's thread, each costing the loop more CPU than the
middleware's own work, for views that are sync anyway. This handler builds the chain in sync mode
and enters it once; the few async views (the monitor's event stream) are run by Django's own
adapter, and the streaming answer is still sent from the event loop.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneHopASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain: Any = self._middleware_chain  # type: ignore[has-type]
        self._middleware_chain = sync_to_async(chain, thread_sensitive=True)


def get_one_hop_asgi_application() -> OneHopASGIHandler:
    """`django.core.asgi.get_asgi_application`, with the one-hop handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()
