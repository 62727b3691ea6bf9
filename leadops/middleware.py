"""Refuse what no view should see (oversized bodies: 413 first, docs/API.md; NUL in a query string),
give every answer under /api/ the protocol's error shape, and put the Content-Security-Policy on HTML
pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware

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


# The answers Django itself writes for a path under /api/ that no view takes: its 404 page (the
# technical one in development), and an empty 405 from a plain view's method check.
API_ERRORS_DJANGO_WRITES = {404: ("not_found", "No such endpoint."),
                            405: ("method_not_allowed", "That method is not allowed on this path.")}


def _api_error_shape(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """The protocol's error shape for a 404 or 405 under /api/ that no view wrote (docs/API.md, "Errors")."""
    known = API_ERRORS_DJANGO_WRITES.get(response.status_code)
    if (known is None or not request.path.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")):
        return response
    shaped = error_response(*known, response.status_code)
    if response.has_header("Allow"):
        shaped["Allow"] = response["Allow"]
    return shaped


class ApiErrorShapeMiddleware(HybridMiddleware):
    """Answer unrouted paths and wrong methods under /api/ as JSON errors, in DEBUG too (where Django
    would show its HTML 404 page instead of `handler404`)."""

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        return _api_error_shape(request, self.get_response(request))  # type: ignore[arg-type]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return _api_error_shape(request, await self.get_response(request))  # type: ignore[misc]


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's, without APPEND_SLASH under /api/: a client there calls the exact path; a redirect would
    drop a POST's body (and in DEBUG Django raises instead, a 500), so it gets the JSON 404."""

    def should_redirect_with_slash(self, request: HttpRequest) -> bool:
        return not request.path.startswith("/api/") and super().should_redirect_with_slash(request)
