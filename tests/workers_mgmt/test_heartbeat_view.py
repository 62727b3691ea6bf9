"""`POST /heartbeat` runs without DRF's per-request machinery (workers_mgmt/heartbeat.py) and must
answer exactly what the DRF view answered: these bytes and headers were recorded from it."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

PATH = "/api/v1/heartbeat"
HEARTBEAT = {"version": "1.0.0", "status": "idle", "running_jobs": 0}


def _answer(response) -> tuple[int, bytes, str, str | None]:
    body = re.sub(rb'"server_time":"[^"]+"', b'"server_time":"T"', response.content)
    return response.status_code, body, response["Content-Type"], response.get("Allow")


def test_an_accepted_heartbeat_answers_the_drf_views_bytes(signed):
    assert _answer(signed.post(PATH, HEARTBEAT)) == (
        200, b'{"server_time":"T","poll_interval_s":5,"config_version":1,"update_target":null}',
        "application/json", "POST, OPTIONS")
    assert "Cache-Control" not in signed.post(PATH, HEARTBEAT)


@pytest.mark.parametrize(("kwargs", "status", "body"), [
    ({"raw": b"{nope"}, 400, b'{"error":{"code":"malformed_json","message":"The body is not valid JSON."}}'),
    ({"raw": b"hello", "content_type": "text/plain"}, 415,
     b'{"error":{"code":"unsupported_media_type","message":"Send application/json."}}'),
    ({"raw": b'{"version":"1"}', "content_type": ""}, 415,
     b'{"error":{"code":"unsupported_media_type","message":"Send application/json."}}'),
    ({"raw": b"[1,2]"}, 422, b'{"error":{"code":"validation_error","message":"The body must be a JSON object.",'
                              b'"fields":{"non_field_errors":["Expected a JSON object."]}}}'),
    ({"sign_overrides": {"secret": "not-it"}}, 401,
     b'{"error":{"code":"unauthorized","message":"Authentication failed."}}'),
])
def test_refusals_answer_the_drf_views_bytes(signed, kwargs, status, body):
    payload = None if "raw" in kwargs else HEARTBEAT
    assert _answer(signed.post(PATH, payload, **kwargs)) == (status, body, "application/json", "POST, OPTIONS")


def test_other_methods_are_still_answered_by_the_drf_view(signed):
    assert _answer(signed.get(PATH)) == (
        405, b'{"error":{"code":"method_not_allowed","message":"Method \\"GET\\" not allowed."}}',
        "application/json", "POST, OPTIONS")
    assert signed.request("OPTIONS", PATH).json()["name"] == "Heartbeat"


def test_a_disabled_worker_gets_its_403(signed):
    from workers_mgmt.models import Worker

    Worker.objects.filter(pk=signed.worker_id).update(enabled=False)
    assert _answer(signed.post(PATH, HEARTBEAT)) == (
        403, b'{"error":{"code":"worker_disabled","message":"This worker is disabled."}}',
        "application/json", "POST, OPTIONS")


def test_without_postgresql_and_redis_the_lane_hands_every_heartbeat_to_django(settings):
    """The lane's async clients are PostgreSQL's and Redis's: elsewhere it must stand aside."""
    import asyncio

    from leadops.heartbeat_lane import HeartbeatLane

    settings.REDIS_URL = ""
    seen: list[bytes] = []

    async def django(scope, receive, send):
        seen.append((await receive())["body"])

    async def receive():
        return {"type": "http.request", "body": b'{"version":"1"}', "more_body": False}

    scope = {"type": "http", "method": "POST", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")]}
    asyncio.run(HeartbeatLane(django)(scope, receive, None))
    assert seen == [b'{"version":"1"}']
