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
