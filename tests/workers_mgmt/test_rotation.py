"""Graceful rotation in four steps, emergency rotation and revocation, each with its audit rows.

Time is frozen with time-machine so the grace window is crossed exactly, not slept through.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from tests.clock import minute_start
from tests.signing import SignedClient
from workers_mgmt.models import CredentialEvent, CredentialState, WorkerCredential
from workers_mgmt.services import (
    RotationInProgress,
    credential_revoke,
    credential_rotate,
    credential_rotate_emergency,
    credentials_expire,
)

pytestmark = pytest.mark.django_db

HEARTBEAT = {"version": "1.0.0", "status": "idle", "running_jobs": 0}
# A round instant near the real now; tests freeze the clock there before they make any data.
T0 = minute_start()


@pytest.fixture
def clock():
    """Frozen time from T0 for the whole test (requested before `signed`, so the worker is made then)."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def events(worker_id: str, since_id: int = 0) -> list[tuple[str, str]]:
    rows = CredentialEvent.objects.filter(worker_id=worker_id, id__gt=since_id).order_by("id")
    return [(row.kind, row.key_id) for row in rows]


def last_event_id() -> int:
    return CredentialEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def state(key_id: str) -> str:
    return WorkerCredential.objects.get(key_id=key_id).state


def with_key(signed: SignedClient, key_id: str, secret: str) -> SignedClient:
    return SignedClient(signed.client, worker_id=signed.worker_id, key_id=key_id, secret=secret)


def test_push_rotation_delivers_promotes_and_keeps_the_old_key_for_the_grace(clock, signed):
    worker_id, old_key = signed.worker_id, signed.key_id
    clock.move_to(T0)
    issued = credential_rotate(worker=signed_worker(signed), actor="alice")
    assert events(worker_id)[-1] == ("created", issued.key_id)
    mark = last_event_id()

    first = signed.post("/api/v1/heartbeat", HEARTBEAT)
    second = signed.post("/api/v1/heartbeat", HEARTBEAT)

    assert first.status_code == 200 and second.status_code == 200
    pushed = {"pending": {"key_id": issued.key_id, "secret": issued.secret}}
    assert first.json()["credentials"] == pushed
    assert second.json()["credentials"] == pushed  # sent until used, audited once
    assert first["Cache-Control"] == "no-store"
    assert events(worker_id, mark) == [("delivered", issued.key_id)]

    new = with_key(signed, issued.key_id, issued.secret)
    mark = last_event_id()
    clock.move_to(T0 + dt.timedelta(minutes=1))
    answer = new.post("/api/v1/heartbeat", HEARTBEAT)
    assert answer.status_code == 200 and "credentials" not in answer.json()
    assert events(worker_id, mark) == [("verified", issued.key_id), ("promoted", issued.key_id)]
    assert state(issued.key_id) == CredentialState.CURRENT
    old = WorkerCredential.objects.get(key_id=old_key)
    assert old.state == CredentialState.PREVIOUS
    assert old.grace_until == T0 + dt.timedelta(minutes=1, hours=24)

    # Inside the grace the old key still works, and is not offered the new key again.
    clock.move_to(T0 + dt.timedelta(hours=24))
    inside = signed.post("/api/v1/heartbeat", HEARTBEAT)
    assert inside.status_code == 200 and "credentials" not in inside.json()

    # After the grace it fails at once, before the scheduled task has even run.
    mark = last_event_id()
    clock.move_to(T0 + dt.timedelta(hours=24, minutes=2))
    assert signed.post("/api/v1/heartbeat", HEARTBEAT).status_code == 401
    assert credentials_expire() == 1
    assert credentials_expire() == 0
    assert signed.post("/api/v1/heartbeat", HEARTBEAT).status_code == 401
    assert new.post("/api/v1/heartbeat", HEARTBEAT).status_code == 200
    assert events(worker_id, mark) == [("auth_failed", old_key), ("expired", old_key),
                                       ("auth_failed", old_key)]
    reasons = list(CredentialEvent.objects.filter(id__gt=mark, kind="auth_failed").order_by("id")
                   .values_list("reason", flat=True))
    assert reasons == ["key_previous", "key_revoked"]
    assert state(old_key) == CredentialState.REVOKED


def signed_worker(signed: SignedClient):
    from workers_mgmt.models import Worker

    return Worker.objects.get(pk=signed.worker_id)


def test_a_second_rotation_while_one_is_pending_is_refused(clock, signed):
    worker = signed_worker(signed)
    credential_rotate(worker=worker, actor="alice")
    mark = last_event_id()
    with pytest.raises(RotationInProgress):
        credential_rotate(worker=worker, actor="bob")
    assert events(worker.pk, mark) == []
    assert WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).count() == 1


def test_manual_rotation_is_not_pushed_and_is_promoted_by_its_first_use(clock, signed):
    worker = signed_worker(signed)
    issued = credential_rotate(worker=worker, actor="alice", mode="manual", grace_hours=1)
    answer = signed.post("/api/v1/heartbeat", HEARTBEAT)
    assert answer.status_code == 200 and "credentials" not in answer.json()
    clock.move_to(T0)
    assert with_key(signed, issued.key_id, issued.secret).get("/api/v1/config").status_code == 200
    old = WorkerCredential.objects.get(key_id=signed.key_id)
    assert (old.state, old.grace_until) == (CredentialState.PREVIOUS, T0 + dt.timedelta(hours=1))
    assert not CredentialEvent.objects.filter(kind="delivered").exists()


def test_only_a_request_signed_with_the_current_key_gets_the_pending_key(clock, signed):
    worker = signed_worker(signed)
    first = credential_rotate(worker=worker, actor="alice")
    with_key(signed, first.key_id, first.secret).post("/api/v1/heartbeat", HEARTBEAT)  # promotes
    second = credential_rotate(worker=worker, actor="alice")
    # The old key is `previous` now: a thief holding it must not learn the next key.
    answer = signed.post("/api/v1/heartbeat", HEARTBEAT)
    assert answer.status_code == 200 and "credentials" not in answer.json()
    current = with_key(signed, first.key_id, first.secret).post("/api/v1/heartbeat", HEARTBEAT)
    assert current.json()["credentials"]["pending"]["key_id"] == second.key_id


def test_promotion_retires_a_key_still_in_an_earlier_grace(clock, signed):
    worker = signed_worker(signed)
    first = credential_rotate(worker=worker, actor="alice")
    with_key(signed, first.key_id, first.secret).get("/api/v1/config")
    second = credential_rotate(worker=worker, actor="alice")
    mark = last_event_id()
    with_key(signed, second.key_id, second.secret).get("/api/v1/config")
    assert events(worker.pk, mark) == [("verified", second.key_id), ("promoted", second.key_id),
                                       ("revoked", signed.key_id)]
    assert [state(k) for k in (signed.key_id, first.key_id, second.key_id)] == ["revoked", "previous", "current"]


def test_revoked_key_fails_at_once_with_its_audit_row(clock, signed):
    credential = WorkerCredential.objects.get(key_id=signed.key_id)
    mark = last_event_id()
    assert credential_revoke(credential=credential, actor="alice") is True
    assert credential_revoke(credential=credential, actor="alice") is False
    assert signed.post("/api/v1/heartbeat", HEARTBEAT).status_code == 401
    assert events(signed.worker_id, mark) == [("revoked", signed.key_id), ("auth_failed", signed.key_id)]
    assert CredentialEvent.objects.get(id__gt=mark, kind="revoked").actor == "alice"


def test_emergency_rotation_revokes_every_old_key_and_the_new_one_works(clock, signed):
    worker = signed_worker(signed)
    pending = credential_rotate(worker=worker, actor="alice")
    mark = last_event_id()
    issued = credential_rotate_emergency(worker=worker, actor="alice")
    assert sorted(events(worker.pk, mark)) == sorted([("revoked", signed.key_id), ("revoked", pending.key_id),
                                                      ("created", issued.key_id)])
    assert signed.post("/api/v1/heartbeat", HEARTBEAT).status_code == 401
    assert with_key(signed, pending.key_id, pending.secret).post("/api/v1/heartbeat", HEARTBEAT).status_code == 401
    assert with_key(signed, issued.key_id, issued.secret).post("/api/v1/heartbeat", HEARTBEAT).status_code == 200
    assert state(issued.key_id) == CredentialState.CURRENT


def test_wrong_secret_fails_and_failures_are_counted_per_worker_reason_and_minute(clock, signed):
    clock.move_to(T0 + dt.timedelta(seconds=5))
    for _ in range(3):
        assert signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"secret": "guess"}).status_code == 401
    clock.move_to(T0 + dt.timedelta(seconds=65))
    assert signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"secret": "guess"}).status_code == 401
    rows = CredentialEvent.objects.filter(worker_id=signed.worker_id, kind="auth_failed").order_by("minute")
    assert [(r.reason, r.minute, r.count, r.ip) for r in rows] == [
        ("bad_signature", T0, 3, "127.0.0.1"),
        ("bad_signature", T0 + dt.timedelta(minutes=1), 1, "127.0.0.1"),
    ]


def test_failure_for_an_unknown_worker_is_recorded_by_its_claimed_id(clock, signed):
    response = signed.post("/api/v1/heartbeat", HEARTBEAT, sign_overrides={"worker_id": "nobody-here"})
    assert response.status_code == 401
    row = CredentialEvent.objects.get(kind="auth_failed")
    assert (row.worker_id, row.reason, row.count) == ("nobody-here", "unknown_key", 1)
