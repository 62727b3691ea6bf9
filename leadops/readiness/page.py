"""Admin › Readiness: the same gates as `readiness`, read live on every view."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from leadops import __version__
from leadops.readiness.gates import readiness_check


def readiness_view(request: HttpRequest) -> HttpResponse:
    readiness = readiness_check()
    context = {
        **admin.site.each_context(request),
        "title": "Readiness (Go/No-Go)",
        "readiness": readiness,
        "held": sum(1 for gate in readiness.gates if gate.ok),
        "leadops_version": __version__,
    }
    response = TemplateResponse(request, "admin/leadops/readiness.html", context)
    response["Cache-Control"] = "no-store"
    return response
