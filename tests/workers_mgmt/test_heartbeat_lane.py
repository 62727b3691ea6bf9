"""The heartbeat on the event loop (leadops/heartbeat_lane.py, workers_mgmt/heartbeat_lane.py).

Each case drives the real ASGI stack in one event loop: the lane in front of Django's handler, with a
spy on what reaches Django. An accepted heartbeat must be answered by the lane with Django's own
bytes and headers, and everything else must reach Django untouched, with nothing taken.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from typing import Any

import pytest
from django.conf import settings as django_settings

from tests.signing import signed_headers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (django_settings.REDIS_URL and django_settings.IS_POSTGRES),
                       reason="the lane runs only on PostgreSQL + Redis (the CI leg with both runs these)"),
]

PATH = "/api/v1/heartbeat"


def _body(version: str = "1.0.0", **extra: Any) -> bytes:
    return json.dumps({"version": version, "status": "idle", "running_jobs": 0, **extra}).encode()


class Stack:
    """The ASGI application as leadops/asgi.py builds it, with a count of requests Django answered."""

    def __init__(self) -> None:
        from leadops.handler import get_one_hop_asgi_application
        from leadops.heartbeat_lane import HeartbeatLane
        from leadops.live_publish import publishing
        from queueing.long_poll import LongPollMiddleware

        # Built here, so Django's middleware reads this test's settings.
        self.django = LongPollMiddleware(get_one_hop_asgi_application())
        self.to_django = 0

        async def spy(scope, receive, send):
            self.to_django += 1
            await self.django(scope, receive, send)

        self.lane = publishing(HeartbeatLane(spy))

    async def post(self, issued, body: bytes, *, lane: bool = True, headers: dict[str, str] | None = None,
                   secret: str | None = None, nonce: str | None = None, scheme: str = "http",
                   extra_headers: list[tuple[str, str]] = ()):
        sent = signed_headers(method="POST", path=PATH, body=body, worker_id=issued.worker_id,
                              key_id=issued.key_id, secret=secret or issued.secret, nonce=nonce)
        sent.update({"Host": "testserver", "Content-Type": "application/json",
                     "Content-Length": str(len(body)), **(headers or {})})
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": scheme, "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
                 "root_path": "", "client": ("10.1.2.3", 40000), "server": ("testserver", 80),
                 "headers": [(name.lower().encode(), value.encode())
                             for name, value in [*extra_headers, *sent.items()]]}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        out: list[dict] = []

        async def receive():
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)

        async def send(message):
            out.append(message)

        await (self.lane if lane else self.django)(scope, receive, send)
        start = out[0]
        content = b"".join(m.get("body", b"") for m in out[1:])
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content


def _run(scenario) -> Any:
    from workers_mgmt.heartbeat_lane import clients_close

    async def main():
        try:
            return await scenario(Stack())
        finally:
            await clients_close()

    return asyncio.run(main())


def _same(content: bytes) -> bytes:
    return re.sub(rb'"server_time":"[^"]+"', b'"server_time":"T"', content)


@pytest.fixture
def issued():
    from tests.factories import make_worker

    return make_worker(worker_id="w-lane")[1]


def test_an_accepted_heartbeat_is_answered_on_the_loop_with_the_views_bytes(issued):
    from workers_mgmt.models import Worker

    async def scenario(stack):
        # The first heartbeat of a process reads the key, records its use and looks for a push key:
        # the view does those; the next one is the lane's.
        by_django = await stack.post(issued, _body("1.0.0"))
        assert stack.to_django == 1
        by_lane = await stack.post(issued, _body("1.0.1", metrics={"cpu": 0.5}))
        return stack.to_django, by_django, by_lane

    to_django, (status, headers, content), (lane_status, lane_headers, lane_content) = _run(scenario)
    assert to_django == 1
    assert (lane_status, lane_headers, _same(lane_content)) == (status, headers, _same(content))
    assert status == 200 and headers["allow"] == "POST, OPTIONS" and headers["x-frame-options"] == "DENY"
    worker = Worker.objects.get(pk="w-lane")
    assert (worker.reported_version, worker.last_metrics, worker.last_ip) == ("1.0.1", {"cpu": 0.5}, "10.1.2.3")
    assert worker.last_heartbeat_at == worker.last_seen_at


def test_behind_a_tls_proxy_the_lane_adds_what_the_security_middleware_adds(issued, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_SSL_REDIRECT = True
    proto = {"X-Forwarded-Proto": "https"}

    async def scenario(stack):
        await stack.post(issued, _body(), headers=proto)
        by_django = await stack.post(issued, _body(), headers=proto, lane=False)
        by_lane = await stack.post(issued, _body(), headers=proto)
        plain = await stack.post(issued, _body())  # plain HTTP: Django's redirect
        return stack.to_django, by_django, by_lane, plain

    to_django, by_django, by_lane, plain = _run(scenario)
    assert to_django == 2  # the first and the plain one
    assert by_lane[1] == by_django[1] and by_lane[1]["strict-transport-security"].startswith("max-age=3600")
    assert plain[0] == 301


def test_a_key_revoked_in_another_process_is_refused_at_once(issued):
    from workers_mgmt.credential_cache import _redis_announce
    from workers_mgmt.models import CredentialState, WorkerCredential

    async def scenario(stack):
        await stack.post(issued, _body())
        accepted = await stack.post(issued, _body())
        assert stack.to_django == 1 and accepted[0] == 200
        # Another process revokes it: the row changes and the generation moves in Redis; this
        # process's copy of the key is untouched (no signal, no local forget here).
        await asyncio.to_thread(lambda: (
            WorkerCredential.objects.filter(key_id=issued.key_id).update(state=CredentialState.REVOKED),
            _redis_announce([issued.worker_id], marker=None)))
        refused = await stack.post(issued, _body())
        return stack.to_django, refused

    to_django, (status, _headers, content) = _run(scenario)
    assert to_django == 2 and status == 401 and b'"unauthorized"' in content


def test_refusals_and_replays_are_the_views_and_take_nothing(issued, settings):
    from workers_mgmt.models import Worker

    async def scenario(stack):
        await stack.post(issued, _body())
        replayed_nonce = "n" * 30
        first = await stack.post(issued, _body(), nonce=replayed_nonce)
        replay = await stack.post(issued, _body(), nonce=replayed_nonce)
        forged = await stack.post(issued, _body("6.6.6"), secret="not-the-secret")
        malformed = await stack.post(issued, b'{"version": 1}')
        return stack.to_django, first, replay, forged, malformed

    to_django, first, replay, forged, malformed = _run(scenario)
    assert first[0] == 200
    assert (replay[0], forged[0], malformed[0]) == (401, 401, 422)
    assert to_django == 4  # the first, then every refusal
    assert Worker.objects.get(pk="w-lane").reported_version == "1.0.0"


def test_a_worker_over_its_rate_limit_gets_the_views_429_and_its_nonce_back(issued):
    from workers_mgmt.models import Worker

    Worker.objects.filter(pk="w-lane").update(rate_limit_per_min=1)  # one at a time, before any copy

    async def scenario(stack):
        first = await stack.post(issued, _body())
        second = await stack.post(issued, _body())
        return stack.to_django, first, second

    to_django, first, second = _run(scenario)
    # The lane found the limit spent, gave the nonce back and let the view answer: its 429, not the
    # 401 of a replayed nonce.
    assert (first[0], second[0], to_django) == (200, 429, 2)
    assert json.loads(second[2])["error"]["code"] == "rate_limited"


def test_a_stale_configuration_copy_or_a_touch_due_goes_to_the_view(issued):
    from workers_mgmt.services import worker_config_cache_clear

    async def scenario(stack):
        await stack.post(issued, _body())
        worker_config_cache_clear()
        by_view = await stack.post(issued, _body())
        by_lane = await stack.post(issued, _body())
        return stack.to_django, by_view, by_lane

    to_django, by_view, by_lane = _run(scenario)
    assert to_django == 2 and by_view[0] == by_lane[0] == 200


def test_the_lane_publishes_the_heartbeat_to_viewers(issued):
    from core import events

    seen: list[dict] = []
    events.sink_register(seen.append)
    try:
        async def scenario(stack):
            await stack.post(issued, _body("1.0.0"))
            await stack.post(issued, _body("2.0.0"))
            return stack.to_django

        assert _run(scenario) == 1
    finally:
        events.sink_unregister(seen.append)
    beats = [e["data"] for e in seen if e["type"] == "worker.heartbeat"]
    assert [b["version"] for b in beats] == ["1.0.0", "2.0.0"]


def test_the_lane_records_the_latency_metric(issued):
    from leadops.metrics import REQUEST_LATENCY

    def count() -> float:
        return sum(sample.value for metric in REQUEST_LATENCY.collect() for sample in metric.samples
                   if sample.name.endswith("_count") and sample.labels.get("route") == "api/v1/heartbeat")

    before = count()

    async def scenario(stack):
        await stack.post(issued, _body())
        await stack.post(issued, _body())
        return stack.to_django

    assert _run(scenario) == 1
    assert count() == before + 2


def test_a_worker_back_from_overdue_goes_to_the_view_which_announces_it(issued, settings):
    from django.utils import timezone

    from workers_mgmt.credential_cache import credential_cache_worker_seen

    async def scenario(stack):
        await stack.post(issued, _body())
        long_ago = timezone.now() - dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S + 60)
        credential_cache_worker_seen(worker_id="w-lane", last_seen_at=long_ago)
        await stack.post(issued, _body())
        return stack.to_django

    assert _run(scenario) == 2


def test_a_spent_ip_failure_budget_refuses_even_a_good_heartbeat_through_the_view(issued, settings):
    settings.LEADOPS_AUTH_FAILURES_IP_PER_MIN = 1
    settings.LEADOPS_AUTH_FAILURES_IP_BURST = 1

    async def scenario(stack):
        await stack.post(issued, _body())
        forged = await stack.post(issued, _body(), secret="not-the-secret")  # spends the IP's budget
        good = await stack.post(issued, _body())
        return stack.to_django, forged, good

    to_django, forged, good = _run(scenario)
    assert (forged[0], good[0], to_django) == (401, 429, 3)


def test_a_repeated_signing_header_is_judged_by_the_view(issued):
    async def scenario(stack):
        await stack.post(issued, _body())
        # Signed with the second nonce; Django reads the two joined by a comma, not a nonce at all.
        twice = await stack.post(issued, _body(), nonce="y" * 30, extra_headers=[("x-leadops-nonce", "x" * 30)])
        return stack.to_django, twice

    to_django, twice = _run(scenario)
    assert (to_django, twice[0]) == (2, 401)


def test_a_database_error_gives_the_nonce_back_and_the_view_answers(issued, monkeypatch):
    from workers_mgmt import heartbeat_lane

    async def broken(self, sql, params):
        raise OSError("connection lost")

    async def scenario(stack):
        await stack.post(issued, _body())
        monkeypatch.setattr(heartbeat_lane._Clients, "update", broken)
        answered = await stack.post(issued, _body("3.0.0"))
        return stack.to_django, answered

    to_django, answered = _run(scenario)
    # Answered by the view with the nonce the lane gave back: a 200, not a replay's 401.
    assert (to_django, answered[0]) == (2, 200)
