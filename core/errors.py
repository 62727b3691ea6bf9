"""One JSON shape for every protocol error: {"error": {"code", "message", "fields"?}}.

Services raise `ProtocolError` subclasses (or DRF exceptions); this module is the one place that
turns them into HTTP answers, so the status codes of docs/API.md live here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ProtocolError(Exception):
    """An error a client can act on, with its HTTP status and snake_case code.

    A subclass says what differs in its class line: `class Gone(ProtocolError, status=410, code="gone")`.
    """

    status = 400
    code = "bad_request"
    message = "Bad request."

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          message: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status or cls.status
        cls.code = code or cls.code
        cls.message = message or cls.message

    def __init__(self, message: str | None = None, *, fields: dict[str, Any] | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.message = message or self.message
        self.fields = fields
        if code:
            self.code = code
        self.headers = headers or {}
        super().__init__(self.message)


class MalformedRequest(ProtocolError, code="malformed_request"): ...
class Unauthorized(ProtocolError, status=401, code="unauthorized", message="Authentication failed."): ...
class WorkerDisabled(ProtocolError, status=403, code="worker_disabled",
                     message="This worker is disabled."): ...
class Forbidden(ProtocolError, status=403, code="forbidden", message="Not allowed."): ...
class NotFound(ProtocolError, status=404, code="not_found", message="Not found."): ...
class Conflict(ProtocolError, status=409, code="conflict"): ...
class PayloadTooLarge(ProtocolError, status=413, code="payload_too_large",
                      message="The request body is too large."): ...
class ValidationFailed(ProtocolError, status=422, code="validation_error",
                       message="The request is not valid."): ...


class RateLimited(ProtocolError, status=429, code="rate_limited", message="Too many requests."):

    def __init__(self, retry_after_s: float, message: str | None = None) -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after_s = seconds


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(code: str, message: str, status: int, *, fields: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> JsonResponse:
    """A plain Django response in the protocol shape, for middleware and URL handlers."""
    response = JsonResponse(error_body(code, message, fields), status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _flatten_drf_detail(detail: Any) -> dict[str, Any]:
    if isinstance(detail, dict):
        return {str(key): _flatten_drf_detail(value) if isinstance(value, dict) else
                [str(item) for item in value] if isinstance(value, list) else str(value)
                for key, value in detail.items()}
    if isinstance(detail, list):
        return {"non_field_errors": [str(item) for item in detail]}
    return {"non_field_errors": [str(detail)]}


# A backing service (PostgreSQL, Redis) that is briefly gone: a restart, a failover, a connection the
# server terminated. The request changed nothing it could not roll back, so the caller may retry.
BACKEND_UNAVAILABLE = (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)
BACKEND_RETRY_AFTER_S = 2


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: map every known error to the protocol shape."""
    if isinstance(exc, BACKEND_UNAVAILABLE):
        # One line, no traceback: an outage would otherwise write one per request. The message of a
        # database error may quote a statement's values, so only the class is logged.
        logger.warning("backing service unavailable (%s); answered 503", type(exc).__name__)
        return Response(error_body("service_unavailable", "A backing service is briefly unavailable; retry."),
                        status=503, headers={"Retry-After": str(BACKEND_RETRY_AFTER_S)})
    if isinstance(exc, ProtocolError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status,
                        headers=exc.headers)
    if isinstance(exc, drf_exceptions.ParseError):
        return Response(error_body("malformed_json", "The body is not valid JSON."), status=400)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return Response(error_body("unsupported_media_type", "Send application/json."), status=415)
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response(error_body("validation_error", "The request is not valid.",
                                   _flatten_drf_detail(exc.detail)), status=422)
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return Response(error_body("unauthorized", "Authentication failed."), status=401,
                        headers={"WWW-Authenticate": "LEADOPS-HMAC-SHA256"})
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return Response(error_body("forbidden", str(exc.detail)), status=403)
    if isinstance(exc, drf_exceptions.NotFound):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return Response(error_body("method_not_allowed", str(exc.detail)), status=405)
    if isinstance(exc, drf_exceptions.Throttled):
        wait = int(getattr(exc, "wait", None) or 1)
        return Response(error_body("rate_limited", "Too many requests."), status=429,
                        headers={"Retry-After": str(max(1, wait))})
    if isinstance(exc, drf_exceptions.APIException):
        return Response(error_body(exc.default_code, str(exc.detail)), status=exc.status_code)
    return None
