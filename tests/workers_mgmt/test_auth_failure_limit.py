"""Failed authentications are limited per source IP and per claimed worker id, so guessing is slow."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import settings_fixture
from tests.signing import signed_headers

pytestmark = pytest.mark.django_db

HEARTBEAT = {"version": "1.0.0", "status": "idle", "running_jobs": 0}


def heartbeat(client, issued, *, secret: str | None = None, ip: str = "10.0.0.1", worker_id: str | None = None):
    body = json.dumps(HEARTBEAT).encode()
    headers = signed_headers(method="POST", path="/api/v1/heartbeat", body=body,
                             worker_id=worker_id or issued.worker_id, key_id=issued.key_id,
                             secret=secret or issued.secret)
    return client.generic("POST", "/api/v1/heartbeat", data=body, content_type="application/json",
                          headers=headers, REMOTE_ADDR=ip)


strict = settings_fixture(
    "Failure budgets small enough to spend in a test.",
    LEADOPS_AUTH_FAILURES_IP_PER_MIN=6, LEADOPS_AUTH_FAILURES_IP_BURST=3,
    LEADOPS_AUTH_FAILURES_WORKER_PER_MIN=12, LEADOPS_AUTH_FAILURES_WORKER_BURST=6,
    LEADOPS_ENROLL_FAILURES_IP_PER_MIN=6, LEADOPS_ENROLL_FAILURES_IP_BURST=3,
)


def test_after_the_burst_of_failures_an_ip_gets_429_even_with_the_right_key(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-guessed")
    codes = [heartbeat(client, issued, secret=f"guess-{i}").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    # The right key from the guessing IP is refused unseen: a guess that happens to be right
    # cannot be told apart from a wrong one while the budget is spent.
    throttled = heartbeat(client, issued)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(throttled["Retry-After"]) <= 10
    # Another source with the right key is not affected by this IP's budget.
    assert heartbeat(client, issued, ip="10.0.0.2").status_code == 200


def test_failures_for_one_worker_id_from_many_ips_are_limited_too(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-target")
    codes = [heartbeat(client, issued, secret="guess", ip=f"10.0.1.{i}").status_code for i in range(7)]
    assert codes == [401] * 6 + [429]


def test_a_spent_worker_budget_never_refuses_a_correctly_signed_request(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-flooded", rate_limit_per_min=100_000)
    # Anyone who saw the worker's key id (it travels in clear headers and sits in audit rows)
    # floods it with bad signatures from several addresses until its failure budget is spent.
    codes = [heartbeat(client, issued, secret="forged", ip=f"10.0.5.{i}").status_code for i in range(10)]
    assert codes[:6] == [401] * 6 and set(codes[6:]) == {429}
    # The real worker, signing correctly, is not refused: the budget only turns failures into 429.
    assert [heartbeat(client, issued, ip="10.0.5.200").status_code for _ in range(3)] == [200] * 3
    # ... while the flood goes on being slowed.
    assert heartbeat(client, issued, secret="forged", ip="10.0.5.201").status_code == 429


def test_successful_requests_do_not_spend_the_failure_budget(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-busy", rate_limit_per_min=100_000)
    assert {heartbeat(client, issued).status_code for _ in range(20)} == {200}


def test_enrollment_guesses_are_limited_per_ip(client, strict):
    codes = [client.post("/api/v1/enroll", {"token": f"enr_guess{i}"}, content_type="application/json",
                         REMOTE_ADDR="10.0.2.1").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]


def test_enrollment_guesses_do_not_spend_the_signed_requests_ip_budget(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-behind-nat")
    for i in range(5):
        client.post("/api/v1/enroll", {"token": f"enr_guess{i}"}, content_type="application/json",
                    REMOTE_ADDR="10.0.2.9")
    assert heartbeat(client, issued, ip="10.0.2.9").status_code == 200


def test_unknown_key_ids_from_many_ips_never_lock_the_worker_out(client, strict):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-known-id")
    # Someone who only knows the worker id signs with key ids that are not the worker's own.
    for i in range(12):
        body = json.dumps(HEARTBEAT).encode()
        headers = signed_headers(method="POST", path="/api/v1/heartbeat", body=body, worker_id=issued.worker_id,
                                 key_id=f"k_guess{i}", secret="guess")
        response = client.generic("POST", "/api/v1/heartbeat", data=body, content_type="application/json",
                                  headers=headers, REMOTE_ADDR=f"10.0.3.{i}")
        assert response.status_code == 401
    assert heartbeat(client, issued, ip="10.0.3.200").status_code == 200


def test_key_of_another_worker_does_not_spend_the_claimed_workers_budget(client, strict):
    from tests.factories import make_worker

    _, target = make_worker(worker_id="w-victim")
    _, other = make_worker(worker_id="w-other")
    for i in range(12):
        body = json.dumps(HEARTBEAT).encode()
        headers = signed_headers(method="POST", path="/api/v1/heartbeat", body=body, worker_id=target.worker_id,
                                 key_id=other.key_id, secret=other.secret)
        client.generic("POST", "/api/v1/heartbeat", data=body, content_type="application/json",
                       headers=headers, REMOTE_ADDR=f"10.0.4.{i}")
    assert heartbeat(client, target, ip="10.0.4.200").status_code == 200


@pytest.mark.skipif(not __import__("os").environ.get("REDIS_URL"),
                    reason="needs Redis (REDIS_URL); the PostgreSQL + Redis leg of CI runs it")
def test_with_redis_a_heartbeat_reads_its_budgets_with_its_nonce(client, strict, monkeypatch):
    # The failure budgets, the nonce and the credential generation are one script, the worker's rate
    # limit another: two round trips (docs/PERFORMANCE.md, "The heartbeat, round two"). A spent IP
    # is still refused before its nonce is taken.
    import redis

    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-trips", rate_limit_per_min=100_000)
    assert heartbeat(client, issued).status_code == 200  # the credential copy is warm
    calls: list[str] = []
    real = redis.Redis.execute_command

    def counted(self, *args, **kwargs):
        calls.append(str(args[0]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    assert heartbeat(client, issued).status_code == 200
    assert len(calls) == 2, calls
    for i in range(3):
        heartbeat(client, issued, secret=f"guess-{i}", ip="10.0.9.1")
    calls.clear()
    body = json.dumps(HEARTBEAT).encode()
    headers = signed_headers(method="POST", path="/api/v1/heartbeat", body=body, worker_id=issued.worker_id,
                             key_id=issued.key_id, secret=issued.secret)
    refused = client.generic("POST", "/api/v1/heartbeat", data=body, content_type="application/json",
                             headers=headers, REMOTE_ADDR="10.0.9.1")
    assert refused.status_code == 429
    # The same nonce from an unspent address is still fresh: the refused request did not take it.
    again = client.generic("POST", "/api/v1/heartbeat", data=body, content_type="application/json",
                           headers=headers, REMOTE_ADDR="10.0.9.2")
    assert again.status_code == 200
