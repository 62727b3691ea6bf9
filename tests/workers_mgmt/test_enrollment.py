"""Enrollment: a one-time token, stored hashed, exchanged once for the worker's first key."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import time_machine

from tests.clock import minute_start
from tests.signing import SignedClient
from workers_mgmt.models import CredentialEvent, EnrollmentToken, Worker, WorkerCredential
from workers_mgmt.services import enrollment_issue, worker_create_for_enrollment

pytestmark = pytest.mark.django_db

# A round instant near the real now; tests freeze the clock there before they make any data.
T0 = minute_start()
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "Authentication failed."}}


def enroll(client, token):
    return client.post("/api/v1/enroll", {"token": token}, content_type="application/json")


def test_a_token_is_exchanged_once_for_a_working_credential(client):
    worker, issued = worker_create_for_enrollment(worker_id="w-new", actor="alice")
    assert not WorkerCredential.objects.filter(worker=worker).exists()
    stored = EnrollmentToken.objects.get(worker=worker)
    assert stored.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.token not in stored.token_hash

    answer = enroll(client, issued.token)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert set(body) == {"worker_id", "key_id", "secret"} and body["worker_id"] == "w-new"
    assert answer["Cache-Control"] == "no-store"
    signed = SignedClient(client, worker_id=body["worker_id"], key_id=body["key_id"], secret=body["secret"])
    assert signed.get("/api/v1/config").status_code == 200

    again = enroll(client, issued.token)
    assert again.status_code == 401 and again.json() == UNAUTHORIZED
    kinds = list(CredentialEvent.objects.filter(worker_id="w-new").order_by("id").values_list("kind", flat=True))
    assert kinds == ["enrollment_issued", "created", "enrolled"]


def test_an_expired_token_is_refused_like_an_unknown_one(client):
    with time_machine.travel(T0, tick=False) as clock:
        _, issued = worker_create_for_enrollment(worker_id="w-late", actor="alice", hours=1)
        clock.move_to(T0 + dt.timedelta(hours=1, seconds=1))
        late = enroll(client, issued.token)
        unknown = enroll(client, "enr_" + "x" * 43)
    assert (late.status_code, late.json()) == (401, UNAUTHORIZED) == (unknown.status_code, unknown.json())
    assert not WorkerCredential.objects.filter(worker_id="w-late").exists()


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, [], {"token": "x" * 500}])
def test_a_malformed_enrollment_is_a_generic_401(client, body):
    response = client.post("/api/v1/enroll", body, content_type="application/json")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


def test_re_enrolling_an_existing_worker_replaces_its_keys(client):
    from tests.factories import make_worker

    worker, old = make_worker(worker_id="w-reinstalled")
    issued = enrollment_issue(worker=worker, actor="alice")
    body = enroll(client, issued.token).json()
    states = dict(WorkerCredential.objects.filter(worker=worker).values_list("key_id", "state"))
    assert states == {old.key_id: "revoked", body["key_id"]: "current"}


def test_a_disabled_workers_token_is_refused(client):
    worker, issued = worker_create_for_enrollment(worker_id="w-off", actor="alice")
    Worker.objects.filter(pk=worker.pk).update(enabled=False)
    assert enroll(client, issued.token).status_code == 401
    assert EnrollmentToken.objects.get(worker=worker).used_at is None
