"""`POST /heartbeat` without DRF's per-request machinery (docs/PERFORMANCE.md, "The heartbeat, round
two").

The heartbeat is the request every worker sends most, and its work is small: check the signature,
store one row, answer a few fields. DRF's view wraps that in a request object, content negotiation,
permission and throttle steps and a renderer choice on every call. This view does the same steps
directly and answers the same bytes: the same signature check (`signed_request_authenticate`), the
same body parser (`FastJSONParser`), the same error shapes (`core.errors.exception_handler`) and the
same JSON rendering, headers included (`Allow`). Its UPDATE returns the update target, so the
answer costs no statement of its own. Every other method goes to the DRF view (`HeartbeatView`),
which keeps answering OPTIONS and the 405s as before and documents the endpoint in the schema.
"""

from __future__ import annotations

import io
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.utils.timezone import now as clock_now
from django.views.decorators.csrf import csrf_exempt
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from core.errors import exception_handler
from core.parsers import FastJSONParser
from workers_mgmt import protocol
from workers_mgmt.api import (
    HeartbeatView,
    answer_fields,
    no_store_if_secret,
    update_target_for,
    update_target_read,
)
from workers_mgmt.auth import signed_request_authenticate
from workers_mgmt.services import worker_config_recent, worker_heartbeat_reading

# What DRF's APIView adds to every answer of this view.
_ALLOW = "POST, OPTIONS"
_renderer = JSONRenderer()
_parser = FastJSONParser()
_drf_view = HeartbeatView.as_view()


@csrf_exempt
def heartbeat_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _drf_view(request)
    try:
        answer = _heartbeat(request)
    except Exception as exc:
        response = exception_handler(exc, {})
        if response is None:
            raise
        return _render(response.data, response.status_code,
                       {name: value for name, value in response.items() if name != "Content-Type"})
    return _render(answer, 200, no_store_if_secret(answer))


# The schema generator documents the DRF view this one answers for (leadops/urls.py serves this one).
heartbeat_view.cls = HeartbeatView  # type: ignore[attr-defined]
heartbeat_view.initkwargs = {}  # type: ignore[attr-defined]


def _heartbeat(request: HttpRequest) -> dict[str, Any]:
    worker, credential = signed_request_authenticate(request)
    data = protocol.heartbeat_parse(_body(request))
    ip = request.META.get("REMOTE_ADDR") or None
    read = update_target_read()
    statement = None if read is None else (read.subquery(connection.vendor), [read.now(), worker.pk])
    value = worker_heartbeat_reading(
        worker=worker, version=data["version"], status=data["status"], running_jobs=data["running_jobs"],
        metrics=data.get("metrics"), ip=ip, self_test=data.get("self_test"), read=statement,
    )
    target = update_target_for(worker.pk) if read is None else read.decode(value)
    return {"server_time": clock_now().isoformat(), "poll_interval_s": worker_config_recent().poll_interval_s,
            **answer_fields(credential=credential, ip=ip, update_target=target)}


def _body(request: HttpRequest) -> Any:
    """The decoded body, as DRF's `request.data` would give it (an empty body is `{}`)."""
    body = request.body
    if not body:
        return {}
    if request.content_type == "application/json" and _utf8((request.content_params or {}).get("charset")):
        return _parser.parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})
    # Anything else (another charset or media type, none at all) gets DRF's own negotiation and its
    # answers (415, 400), exactly as before.
    return Request(request, parsers=[_parser]).data


def _utf8(charset: str | None) -> bool:
    return charset is None or charset.lower().replace("-", "").replace("_", "") == "utf8"


def _render(data: Any, status: int, headers: dict[str, str] | None) -> HttpResponse:
    response = HttpResponse(_renderer.render(data), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    response["Allow"] = _ALLOW
    return response
