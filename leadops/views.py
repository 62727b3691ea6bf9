"""Small top-level views: the landing redirect and JSON error pages for the API."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from core.errors import error_response


def home(request: HttpRequest) -> HttpResponse:
    return redirect("admin:index")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("not_found", "No such endpoint.", 404)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response("internal_error", "The server failed; the error was logged.", 500)
    return html_server_error(request)
