"""The signed HTTP client against an in-memory portal (httpx.MockTransport)."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json

import httpx
import pytest

from worker_client import errors
from worker_client.client import LeadOpsClient, RetryPolicy, parse_retry_after
from worker_client.tests.fake_portal import BASE_URL, FakePortal

ATTEMPT = "6f1c2a8e-33a5-4a55-9d55-1c6e0a4d2b11"


@pytest.fixture
def portal() -> FakePortal:
    return FakePortal()


def make_client(portal: FakePortal, **kwargs) -> tuple[LeadOpsClient, list[float]]:
    sleeps: list[float] = []
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, backoff_base_s=0.01, backoff_cap_s=0.05))
    client = LeadOpsClient(BASE_URL, portal.worker_id, *next(iter(portal.keys.items())),
                           transport=portal.transport, sleep=sleeps.append, **kwargs)
    return client, sleeps


def test_client_signs_exactly_the_bytes_it_sends(portal):
    client, _ = make_client(portal)
    job = portal.add_jobs(1)[0]
    job.state, job.attempt_id = "leased", ATTEMPT
    leads = [{"name": "مطعم الواحة", "phone": "٠٥٠١٢٣٤٥٦٧", "rating": 4.5}]

    client.report(job.id, ATTEMPT, "succeeded", leads, idempotency_key="key-1")

    sent = portal.calls("/report")[0]
    assert portal.auth_failures == 0
    assert sent.headers["x-leadops-content-sha256"] == hashlib.sha256(sent.body).hexdigest()
    assert sent.headers["content-type"] == "application/json"
    # Compact UTF-8 JSON: Arabic goes as UTF-8, not as \\u escapes.
    assert "مطعم الواحة".encode() in sent.body
    assert json.loads(sent.body) == {"attempt_id": ATTEMPT, "outcome": "succeeded", "leads": leads}


def test_get_without_body_signs_the_hash_of_the_empty_string(portal):
    client, _ = make_client(portal)

    assert client.config()["max_batch"] == 10

    sent = portal.calls("/config")[0]
    assert sent.body == b""
    assert sent.headers["x-leadops-content-sha256"] == hashlib.sha256(b"").hexdigest()


def test_query_string_is_signed_as_sent(portal):
    client, _ = make_client(portal)

    client.request("GET", "/config", query="x=1&y=2")

    sent = portal.calls("/config")[0]
    assert sent.query == "x=1&y=2"
    assert portal.auth_failures == 0


def test_wrong_secret_is_refused_as_unauthorized(portal):
    client = LeadOpsClient(BASE_URL, portal.worker_id, "k-1", "wrong", transport=portal.transport)

    with pytest.raises(errors.Unauthorized) as caught:
        client.config()

    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    assert len(portal.requests) == 1  # a 401 is not retried


def test_report_retries_keep_idempotency_key_and_body_and_re_sign(portal):
    client, sleeps = make_client(portal)
    job = portal.add_jobs(1)[0]
    job.state, job.attempt_id = "leased", ATTEMPT
    portal.fail_next("/report", httpx.Response(503, text="<html>busy</html>"),
                     httpx.ConnectError("connection refused"), httpx.Response(502))

    answer = client.report(job.id, ATTEMPT, "succeeded", [{"name": "A", "phone": "0501234567"}])

    assert answer["job_state"] == "succeeded"
    tries = portal.calls("/report")
    assert len(tries) == 4
    assert len({t.headers["idempotency-key"] for t in tries}) == 1
    assert len({t.body for t in tries}) == 1
    assert len({t.headers["x-leadops-nonce"] for t in tries}) == 4
    assert len(sleeps) == 3
    assert client.stats.snapshot() == {"requests": 4, "failed_requests": 3, "retries": 3}


def test_retry_after_seconds_is_honoured(portal):
    client, sleeps = make_client(portal)
    portal.fail_next("/jobs/pull", httpx.Response(429, json={"error": {"code": "rate_limited", "message": "slow"}},
                                                  headers={"Retry-After": "7"}))

    client.pull(max=5)

    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured():
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)

    assert 28 <= parse_retry_after(later) <= 31
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_and_then_gives_up_with_a_typed_error(portal):
    client, sleeps = make_client(portal, retry=RetryPolicy(max_attempts=4, backoff_base_s=1.0, backoff_cap_s=3.0))
    portal.fail_next("/heartbeat", *[httpx.Response(500)] * 4)

    with pytest.raises(errors.ServerError) as caught:
        client.heartbeat(version="t", status="idle", running_jobs=0)

    assert caught.value.status == 500 and caught.value.code == "http_500"
    # Equal jitter: each delay lies in [d/2, d] with d = min(cap, base * 2**(n-1)).
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 1.5 <= sleeps[2] <= 3.0


def test_network_errors_end_in_transport_failure(portal):
    client, sleeps = make_client(portal)
    portal.fail_next("/config", *[httpx.ReadTimeout("slow")] * 4)

    with pytest.raises(errors.TransportFailure):
        client.config()

    assert len(sleeps) == 3


@pytest.mark.parametrize(("status", "code", "expected"), [
    (409, "attempt_superseded", errors.AttemptSuperseded),
    (409, "job_finished", errors.JobFinished),
    (401, "unauthorized", errors.Unauthorized),
    (403, "worker_disabled", errors.WorkerDisabled),
    (403, "attempt_not_owned", errors.AttemptNotOwned),
    (404, "job_not_found", errors.NotFound),
    (413, "payload_too_large", errors.PayloadTooLarge),
    (422, "idempotency_key_reused", errors.IdempotencyKeyReused),
    (422, "validation_error", errors.ValidationFailed),
    (400, "malformed_json", errors.MalformedRequest),
    (409, "something_new", errors.Conflict),
])
def test_error_shape_becomes_a_typed_error(portal, status, code, expected):
    client, _ = make_client(portal)
    body = {"error": {"code": code, "message": "Because.", "fields": {"max": ["Too big."]}}}
    portal.fail_next("/extend", httpx.Response(status, json=body))

    with pytest.raises(expected) as caught:
        client.extend(1, ATTEMPT)

    error = caught.value
    assert isinstance(error, errors.ProtocolError)
    assert (error.status, error.code, error.message, error.fields) == (status, code, "Because.", {"max": ["Too big."]})
    assert len(portal.calls("/extend")) == 1


def test_a_foreign_error_body_still_becomes_a_typed_error(portal):
    client, _ = make_client(portal, retry=RetryPolicy(max_attempts=1))
    portal.fail_next("/config", httpx.Response(502, text="<html><body>Bad gateway</body></html>"))

    with pytest.raises(errors.ServerError) as caught:
        client.config()

    assert caught.value.code == "http_502"
    assert "Bad gateway" in caught.value.message


def test_heartbeat_adopts_a_pushed_key_and_hides_its_secret(portal):
    stored: list[tuple[str, str]] = []
    client, _ = make_client(portal, on_credentials=lambda key_id, secret: stored.append((key_id, secret)))
    portal.keys["k-2"] = "new-secret"
    portal.heartbeat_extra = {"credentials": {"pending": {"key_id": "k-2", "secret": "new-secret"}}}

    answer = client.heartbeat(version="t", status="idle", running_jobs=0)

    assert stored == [("k-2", "new-secret")]
    assert client.key_id == "k-2"
    assert "new-secret" not in json.dumps(answer)
    assert "new-secret" not in repr(client)
    del portal.keys["k-1"]  # the old key is retired; the client must not need it any more
    client.config()
    assert portal.calls("/config")[-1].headers["x-leadops-key-id"] == "k-2"
    assert portal.auth_failures == 0


def test_a_key_that_cannot_be_stored_is_not_adopted(portal):
    def broken_store(key_id: str, secret: str) -> None:
        raise OSError("disk full")

    client, _ = make_client(portal, on_credentials=broken_store)
    portal.heartbeat_extra = {"credentials": {"pending": {"key_id": "k-2", "secret": "new-secret"}}}

    client.heartbeat(version="t", status="idle", running_jobs=0)

    assert client.key_id == "k-1"


def test_heartbeat_learns_the_server_clock(portal):
    client, _ = make_client(portal)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    portal.fail_next("/heartbeat", httpx.Response(200, json={"server_time": ahead.isoformat(),
                                                             "poll_interval_s": 5, "config_version": 1}))

    client.heartbeat(version="t", status="idle", running_jobs=0)

    assert abs((client.server_now() - ahead).total_seconds()) < 2


def test_release_sends_attempt_ids_or_nothing_for_all(portal):
    client, _ = make_client(portal)

    client.release([ATTEMPT])
    client.release()

    first, second = portal.calls("/jobs/release")
    assert first.json == {"attempt_ids": [ATTEMPT]}
    assert second.json == {}


def test_base_url_with_a_path_prefix_is_signed_with_the_full_path():
    portal = FakePortal()
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        path = request.url.path
        assert request.headers["x-leadops-content-sha256"] == hashlib.sha256(b"").hexdigest()
        canonical = "\n".join(["LEADOPS-HMAC-SHA256", "GET", path, "", portal.worker_id, "k-1",
                               request.headers["x-leadops-timestamp"], request.headers["x-leadops-nonce"],
                               hashlib.sha256(b"").hexdigest()])
        import hmac as hmac_module

        expected = hmac_module.new(b"s", canonical.encode(), hashlib.sha256).hexdigest()
        assert request.headers["authorization"].endswith(expected)
        return httpx.Response(200, json={})

    client = LeadOpsClient(f"{BASE_URL}/portal/", portal.worker_id, "k-1", "s",
                           transport=httpx.MockTransport(handler))
    client.config()

    assert seen == ["/portal/api/v1/config"]
