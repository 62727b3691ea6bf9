"""`core.db.bulk.rows_update`: many rows' new values in one UPDATE, stored as the ORM stores them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.db.bulk import rows_insert, rows_update
from core.db.pipeline import pipelined
from leadops.models import MonitorEvent
from queueing.models import AttemptState, Job, JobAttempt, ReportReceipt
from tests.factories import make_jobs, make_worker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _pipeline_on(settings):
    # Off by default (docs/DEPLOY.md, LEADOPS_DB_PIPELINE): these tests are about the pipelined path.
    settings.LEADOPS_DB_PIPELINE = True


def _attempts(count: int) -> list[JobAttempt]:
    worker, _ = make_worker()
    now = timezone.now()
    return [JobAttempt.objects.create(job=job, number=1, worker=worker, claimed_at=now) for job in make_jobs(count)]


def test_rows_update_writes_each_rows_values_in_one_statement():
    attempts = _attempts(3)
    later = timezone.now().replace(microsecond=123456) + dt.timedelta(hours=1)
    for index, attempt in enumerate(attempts):
        attempt.state = AttemptState.FAILED
        attempt.finished_at = later + dt.timedelta(seconds=index)
        attempt.error = {"code": f"e{index}", "nested": {"ok": index % 2 == 0}, "text": "مرحبا"}
        attempt.reports = index + 7
        attempt.log_tail = f"line {index}\n"
    with CaptureQueriesContext(connection) as queries:
        rows_update(model=JobAttempt, rows=attempts,
                    fields=["state", "finished_at", "error", "reports", "log_tail"])
    assert len(queries.captured_queries) == 1
    for index, attempt in enumerate(attempts):
        stored = JobAttempt.objects.get(pk=attempt.pk)
        assert (stored.state, stored.finished_at, stored.error, stored.reports, stored.log_tail) == (
            AttemptState.FAILED, later + dt.timedelta(seconds=index),
            {"code": f"e{index}", "nested": {"ok": index % 2 == 0}, "text": "مرحبا"}, index + 7, f"line {index}\n")


def test_rows_update_writes_nulls_and_foreign_keys():
    worker, _ = make_worker()
    (job,) = make_jobs(1)
    job.leased_by_id, job.lease_expires_at, job.last_error = worker.pk, timezone.now(), {"code": "x"}
    rows_update(model=Job, rows=[job], fields=["leased_by", "lease_expires_at", "last_error"])
    assert Job.objects.get(pk=job.pk).leased_by_id == worker.pk
    job.leased_by_id, job.lease_expires_at, job.last_error = None, None, None
    rows_update(model=Job, rows=[job], fields=["leased_by", "lease_expires_at", "last_error"])
    stored = Job.objects.get(pk=job.pk)
    assert (stored.leased_by_id, stored.lease_expires_at, stored.last_error) == (None, None, None)


def test_rows_update_refuses_what_is_not_a_column_and_rows_that_are_not_there():
    (attempt,) = _attempts(1)
    with pytest.raises(ValueError, match="id"):
        rows_update(model=JobAttempt, rows=[attempt], fields=["id"])
    ghost = JobAttempt(id=uuid.uuid4(), job=attempt.job, number=2, claimed_at=timezone.now())
    # PostgreSQL checks the count in the statement (it may be pipelined); SQLite after it.
    wrong_count = DataError if connection.vendor == "postgresql" else RuntimeError
    with pytest.raises(wrong_count, match="updated 1 rows of 2"), transaction.atomic():
        rows_update(model=JobAttempt, rows=[attempt, ghost], fields=["reports"])
    rows_update(model=JobAttempt, rows=[], fields=["reports"])  # nothing to write: no statement


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_wrong_count_nobody_waited_for_still_fails_its_transaction():
    # In a pipelined block the UPDATE is not waited for; its failed check surfaces at the commit,
    # and nothing of the transaction is kept.
    attempt, other = _attempts(2)
    ghost = JobAttempt(id=uuid.uuid4(), job=attempt.job, number=2, claimed_at=timezone.now())
    attempt.reports = other.reports = 7
    with pytest.raises(DataError, match="updated 1 rows of 2"), pipelined(), transaction.atomic():
        rows_update(model=JobAttempt, rows=[other], fields=["reports"])
        rows_update(model=JobAttempt, rows=[attempt, ghost], fields=["reports"])
    assert list(JobAttempt.objects.values_list("reports", flat=True)) == [0, 0]


@pytest.mark.postgres
def test_a_pipelined_block_sends_in_pipeline_mode_and_ends_it():
    from psycopg.pq import PipelineStatus

    connection.ensure_connection()
    with pipelined():
        assert connection.connection.pgconn.pipeline_status == PipelineStatus.ON
        (attempt,) = _attempts(1)
    assert connection.connection.pgconn.pipeline_status == PipelineStatus.OFF
    assert JobAttempt.objects.get(pk=attempt.pk).number == 1


@pytest.mark.postgres
def test_counts_hold_in_a_pipelined_block():
    # Django decides on row counts (update(), delete(), save()); in pipeline mode psycopg reports -1
    # until the results are read, so the backend's cursor waits for them (core/db/postgresql/base.py).
    attempts = _attempts(3)
    with pipelined(), transaction.atomic():
        assert JobAttempt.objects.filter(pk__in=[a.pk for a in attempts[:2]]).update(reports=5) == 2
        assert JobAttempt.objects.filter(pk=uuid.uuid4()).update(reports=5) == 0
        assert JobAttempt.objects.filter(pk=attempts[2].pk).delete()[0] == 1
    assert sorted(JobAttempt.objects.values_list("reports", flat=True)) == [5, 5]


@pytest.mark.postgres
def test_a_breaker_opens_once_inside_a_pipelined_block():
    from queueing.models import Breaker, BreakerTransition
    from queueing.services.breakers import _breaker_move

    now = timezone.now()
    with pipelined(), transaction.atomic():
        assert _breaker_move(scope="provider", key="maps", from_state="closed", to_state="open",
                             reason="test", now=now)
        # A second move from CLOSED finds the row OPEN: its UPDATE counts 0 and nothing moves.
        assert not _breaker_move(scope="provider", key="maps", from_state="closed", to_state="open",
                                 reason="test", now=now)
    assert Breaker.objects.get(scope="provider", key="maps").state == "open"
    assert BreakerTransition.objects.filter(scope="provider", key="maps").count() == 1


def _stored(model, pks):
    return [model.objects.filter(pk=pk).values().get() for pk in pks]


def test_rows_insert_stores_what_bulk_create_stores_in_one_statement():

    worker, _ = make_worker()
    jobs = make_jobs(4)
    at = timezone.now().replace(microsecond=654321)

    def events():
        return [MonitorEvent(type=f"t{i}", at=at + dt.timedelta(seconds=i),
                             data={"i": i, "text": "مرحبا", "nested": [None, True, 1.5], "big": 2**70})
                for i in range(3)]

    def attempts():
        return [JobAttempt(job=job, number=2, worker=worker if i % 2 else None, claimed_at=at,
                           lease_expires_at=None if i % 2 else at, error={"code": "x"} if i else None)
                for i, job in enumerate(jobs)]

    def receipts():
        return [ReportReceipt(worker_id=worker.pk, idempotency_key=f"k{i}-{uuid.uuid4()}",
                              request_hash="h" * 64, job=job, response={"ok": i}, created_at=at)
                for i, job in enumerate(jobs)]

    for make in (events, attempts, receipts):
        ours, theirs = make(), make()
        with CaptureQueriesContext(connection) as queries:
            rows_insert(model=type(ours[0]), rows=ours)
        assert len(queries.captured_queries) == 1
        type(theirs[0]).objects.bulk_create(theirs)
        assert all(row.pk is not None and not row._state.adding for row in ours)
        mine, django = _stored(type(ours[0]), [r.pk for r in ours]), _stored(type(ours[0]), [r.pk for r in theirs])
        for a, b in zip(mine, django, strict=True):
            a.pop("id"), b.pop("id")
            if "idempotency_key" in a:
                a.pop("idempotency_key"), b.pop("idempotency_key")
            assert a == b


def test_rows_insert_gives_each_row_its_own_generated_key():

    at = timezone.now()
    rows = [MonitorEvent(type="t", at=at, data={"n": n}) for n in range(150)]
    rows_insert(model=MonitorEvent, rows=rows)
    keys = [row.pk for row in rows]
    assert keys == sorted(keys)
    assert dict(MonitorEvent.objects.filter(pk__in=keys).values_list("pk", "data__n")) == {
        row.pk: n for n, row in enumerate(rows)}
    rows_insert(model=MonitorEvent, rows=[])  # nothing to write: no statement
