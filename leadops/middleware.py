"""Refuse what no view should see (oversized bodies: 413 first, docs/API.md; NUL in a query string),
and put the Content-Security-Policy on HTML pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

from core.errors import error_response


def _too_large(request: HttpRequest) -> HttpResponse | None:
    limit = settings.LEADOPS_MAX_BODY_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or "0")
    except ValueError:
        return error_response("malformed_request", "Content-Length is not a number.", 400)
    if length > limit:
        return error_response("payload_too_large", f"The body is larger than {limit} bytes.", 413)
    return None


class HybridMiddleware:
    """Both sync and async: under daphne a sync-only middleware in the stack would make Django hop
    between the event loop and the sync thread around every other middleware (and run the async SSE
    view in a thread)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # type: ignore[type-var]


class RefuseEarlyMiddleware(HybridMiddleware):
    """Answer from `refuse(request)` when it has an answer; otherwise pass the request on."""

    @staticmethod
    def refuse(request: HttpRequest) -> HttpResponse | None:
        raise NotImplementedError

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        return self.refuse(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        return await self.get_response(request)  # type: ignore[misc]


class BodySizeLimitMiddleware(RefuseEarlyMiddleware):
    refuse = staticmethod(_too_large)


class ContentSecurityPolicyMiddleware(HybridMiddleware):
    """Send `LEADOPS_CSP` on every HTML page (admin, monitor, release pages; Django 5.2 has no CSP).

    The admin pages load scripts only from this site (no inline scripts), so `script-src 'self'`
    holds; styles allow inline because Django admin and the monitor templates use style attributes.
    JSON answers of the API carry no CSP: nothing renders them as a document.
    """

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        return _with_csp(self.get_response(request))  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return _with_csp(await self.get_response(request))  # type: ignore[misc]


def _with_csp(response: HttpResponse) -> HttpResponse:
    policy = settings.LEADOPS_CSP
    if policy and response.get("Content-Type", "").startswith("text/html"):
        response.headers.setdefault("Content-Security-Policy", policy)
    return response


def _nul_in_query(request: HttpRequest) -> HttpResponse | None:
    # PostgreSQL refuses NUL in any text value: an admin list filter or search given `%00` would
    # raise a DataError (a 500) deep in the query. The API is left alone: a caller there is
    # authenticated first (an unsigned request is always the 401), and its views validate their input.
    if "%00" not in request.META.get("QUERY_STRING", "") or request.path.startswith("/api/"):
        return None
    return HttpResponseBadRequest("The query string holds a NUL character.")


class QueryStringNulMiddleware(RefuseEarlyMiddleware):
    refuse = staticmethod(_nul_in_query)
