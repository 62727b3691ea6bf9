"""On PostgreSQL: the audit trail refuses UPDATE and DELETE, and rotation steps are race-safe."""

from __future__ import annotations

import threading

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import F

from tests.factories import make_worker
from workers_mgmt.models import CredentialEvent, CredentialState, WorkerCredential
from workers_mgmt.services import (
    RotationInProgress,
    auth_failure_record,
    credential_event_add,
    credential_promote,
    credential_rotate,
)

pytestmark = pytest.mark.postgres


def refused(action) -> bool:
    try:
        with transaction.atomic():
            action()
    except DatabaseError as exc:
        return "append-only" in str(exc)
    return False


@pytest.mark.django_db
def test_the_trigger_refuses_update_and_delete_of_audit_rows():
    event = credential_event_add(worker_id="w-1", kind="revoked", actor="alice", key_id="k_1")
    rows = CredentialEvent.objects.filter(pk=event.pk)
    assert refused(lambda: rows.update(actor="mallory"))
    assert refused(lambda: rows.update(count=F("count") + 1))
    assert refused(lambda: rows.delete())
    assert rows.get().actor == "alice"


@pytest.mark.django_db
def test_the_trigger_lets_only_the_auth_failed_counter_grow():
    auth_failure_record(worker_id="w-1", reason="bad_signature", ip="10.0.0.1")
    auth_failure_record(worker_id="w-1", reason="bad_signature", ip="10.0.0.9")
    row = CredentialEvent.objects.get(kind="auth_failed")
    assert (row.count, row.ip) == (2, "10.0.0.1")
    rows = CredentialEvent.objects.filter(pk=row.pk)
    assert refused(lambda: rows.update(count=1))
    assert refused(lambda: rows.update(count=5, reason="other"))
    # Old auth_failed rows are purged on a schedule (workers_mgmt.tasks.purge_auth_failures), so
    # they alone may be deleted; every other kind of row still refuses (tests/leadops/test_purges.py).
    assert not refused(lambda: rows.delete())


def run_at_once(count: int, action) -> list:
    barrier = threading.Barrier(count)
    results: list = []
    lock = threading.Lock()

    def run():
        try:
            barrier.wait()
            outcome = action()
        except Exception as exc:  # collected and checked by the test
            outcome = exc
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_with_the_pending_key_promote_it_once():
    worker, first = make_worker(worker_id="race-1")
    issued = credential_rotate(worker=worker, actor="alice")

    results = run_at_once(8, lambda: credential_promote(
        credential=WorkerCredential.objects.get(key_id=issued.key_id)))

    assert sorted(results) == [False] * 7 + [True]
    assert CredentialEvent.objects.filter(key_id=issued.key_id, kind="promoted").count() == 1
    states = dict(WorkerCredential.objects.filter(worker=worker).values_list("key_id", "state"))
    assert states == {first.key_id: CredentialState.PREVIOUS, issued.key_id: CredentialState.CURRENT}


@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_make_one_pending_key():
    worker, _ = make_worker(worker_id="race-2")

    results = run_at_once(8, lambda: credential_rotate(worker=worker, actor="alice"))

    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, RotationInProgress) for r in results if isinstance(r, Exception)), results
    assert WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).count() == 1
    assert CredentialEvent.objects.filter(worker_id="race-2", kind="created").count() == 2
