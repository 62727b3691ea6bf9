"""Refuse oversized bodies before anything parses them (DESIGN.md section 4: 413 first)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from leadops.errors import error_response


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.LEADOPS_MAX_BODY_BYTES
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return error_response("malformed_request", "Content-Length is not a number.", 400)
        if length > limit:
            return error_response(
                "payload_too_large", f"The body is larger than {limit} bytes.", 413
            )
        return self.get_response(request)
