"""Request signing (docs/API.md): every refusal reason, and the happy path."""

from __future__ import annotations

import logging
import time

import pytest

from workers_mgmt.models import CredentialState, Worker, WorkerCredential

pytestmark = pytest.mark.django_db

HEARTBEAT = {"version": "1.0.0", "status": "idle", "running_jobs": 0}


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    assert response.json() == {"error": {"code": "unauthorized", "message": "Authentication failed."}}


def test_correctly_signed_heartbeat_is_accepted(signed):
    response = signed.post("/api/v1/heartbeat", HEARTBEAT)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"server_time", "poll_interval_s", "config_version"}
    worker = Worker.objects.get(pk=signed.worker_id)
    assert worker.reported_version == "1.0.0"
    assert worker.last_heartbeat_at is not None


def test_wrong_secret_is_refused(signed):
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"secret": "not-it"}))


@pytest.mark.parametrize("offset", [301, -301, 3600])
def test_timestamp_outside_the_window_is_refused(signed, offset):
    response = signed.post("/api/v1/heartbeat", HEARTBEAT,
                           sign_overrides={"timestamp": int(time.time()) + offset})
    assert_unauthorized(response)


def test_timestamp_inside_the_window_is_accepted(signed):
    response = signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"timestamp": int(time.time()) - 290})
    assert response.status_code == 200


def test_replayed_nonce_is_refused(signed):
    nonce = "AAAAAAAAAAAAAAAAAAAAAA"
    first = signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"nonce": nonce})
    assert first.status_code == 200
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"nonce": nonce}))


def test_tampered_body_is_refused(signed):
    response = signed.post("/api/v1/heartbeat", HEARTBEAT,
                           tamper_body=b'{"version": "6.6.6", "status": "idle", "running_jobs": 0}')
    assert_unauthorized(response)
    assert Worker.objects.get(pk=signed.worker_id).reported_version == ""


def test_tampered_query_is_refused(signed):
    assert signed.get("/api/v1/config", query="a=1").status_code == 200
    assert_unauthorized(signed.get("/api/v1/config", query="a=1", tamper_query="a=2"))


def test_signed_query_string_is_accepted_exactly_as_sent(signed):
    assert signed.get("/api/v1/config", query="b=2&a=1&a=%20x").status_code == 200


def test_unknown_worker_is_refused(signed):
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT,
                                    sign_overrides={"worker_id": "nobody"},
                                    headers={"X-LeadOps-Worker": "nobody"}))


def test_key_of_another_worker_is_refused(signed, make_signed):
    other = make_signed("w-other")
    response = signed.post("/api/v1/heartbeat", HEARTBEAT,
                           sign_overrides={"key_id": other.key_id, "secret": other.secret})
    assert_unauthorized(response)


def test_disabled_worker_gets_403(signed):
    Worker.objects.filter(pk=signed.worker_id).update(enabled=False)
    response = signed.post("/api/v1/heartbeat", HEARTBEAT)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "worker_disabled"


def test_disabled_worker_with_a_bad_signature_learns_nothing(signed):
    Worker.objects.filter(pk=signed.worker_id).update(enabled=False)
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"secret": "x"}))


def test_revoked_key_is_refused(signed):
    WorkerCredential.objects.filter(key_id=signed.key_id).update(state=CredentialState.REVOKED)
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT))


def test_previous_key_works_only_inside_its_grace(signed):
    from django.utils import timezone

    credential = WorkerCredential.objects.get(key_id=signed.key_id)
    credential.state = CredentialState.PREVIOUS
    credential.grace_until = timezone.now() + timezone.timedelta(hours=1)
    credential.save()
    assert signed.post("/api/v1/heartbeat", HEARTBEAT).status_code == 200
    credential.grace_until = timezone.now() - timezone.timedelta(seconds=1)
    credential.save()
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT))


@pytest.mark.parametrize("header", ["X-LeadOps-Worker", "X-LeadOps-Key-Id", "X-LeadOps-Timestamp",
                                    "X-LeadOps-Nonce", "X-LeadOps-Content-SHA256", "Authorization"])
def test_each_missing_header_is_refused(signed, header):
    assert_unauthorized(signed.post("/api/v1/heartbeat", HEARTBEAT, headers={header: ""}))


def test_signature_in_upper_case_hex_is_refused(signed):
    from tests.signing import signed_headers

    headers = signed_headers(method="POST", path="/api/v1/heartbeat", body=b"", worker_id=signed.worker_id,
                             key_id=signed.key_id, secret=signed.secret)
    headers["Authorization"] = headers["Authorization"].upper().replace("SIGNATURE", "Signature")
    response = signed.client.post("/api/v1/heartbeat", data=b"", content_type="application/json",
                                  headers=headers)
    assert_unauthorized(response)


def test_unsigned_request_is_refused(client, db):
    assert_unauthorized(client.post("/api/v1/jobs/pull", {"max": 1}, content_type="application/json"))


def test_refusal_reason_is_logged_but_not_the_secret(signed, caplog):
    with caplog.at_level(logging.WARNING, logger="leadops.auth"):
        signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"secret": "wrong"})
    assert "reason=bad_signature" in caplog.text
    assert signed.secret not in caplog.text


def test_secret_is_encrypted_at_rest(signed):
    credential = WorkerCredential.objects.get(key_id=signed.key_id)
    assert signed.secret not in credential.secret_encrypted


def test_rate_limit_answers_429_with_retry_after(make_signed):
    limited = make_signed("w-slow", rate_limit_per_min=10)  # burst of 1
    assert limited.post("/api/v1/heartbeat", HEARTBEAT).status_code == 200
    response = limited.post("/api/v1/heartbeat", HEARTBEAT)
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 6
