"""Exchange (protocol v1.1): many reports in one transaction, each isolated in its own savepoint.

Each item is exactly the v1 report (`job_report`) with its own Idempotency-Key, so its answer is
shaped by the same code and a replay returns the first answer. One item's failure rolls back its own
savepoint only (docs/API.md, "Exchange"). The claim runs after this transaction commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, models, transaction
from django.utils.timezone import now as clock_now

from core import events
from core.counters import metric_totals_add
from core.errors import ProtocolError, error_body
from core.text import json_bytes
from ingestion.schema import LeadInput
from ingestion.services import IngestBatch, lead_batches_ingest
from queueing.models import AttemptState, Job, JobAttempt, JobState, Provider, ReportReceipt
from queueing.services.breakers import _breaker_outcome
from queueing.services.errors import (
    IdempotencyKeyReused,
    JobNotFound,
)
from queueing.services.leases import _MAX_BIGINT, _attempt_check
from queueing.services.report import (
    ReportOutcome,
    ReportResult,
    ReportTail,
    job_fail_decide,
    job_fail_publish,
    job_report,
    log_tail_masked,
    report_counts_body,
)
from workers_mgmt.models import Worker

# A deadlock aborts the whole transaction, which nothing has seen yet: it is safe to run again.
_DEADLOCK_TRIES = 3


@dataclass(frozen=True)
class ReportCall:
    """One report item, parsed and checked exactly as the v1 report endpoint checks its request."""

    job_id: int
    attempt_id: uuid.UUID
    outcome: str
    leads: list[LeadInput]
    error: dict[str, Any] | None
    idempotency_key: str
    request_hash: str
    log_tail: str | None = None


def reports_exchange(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    """Take many reports of one worker in one transaction; returns one result per item, in order.

    An item given as a `ReportResult` already failed its parsing (its error answer is passed
    through untouched). Every other item runs `job_report` in a savepoint of its own: its error
    becomes that item's answer and undoes only its own writes.
    """
    for attempt in range(_DEADLOCK_TRIES):
        try:
            return _reports_exchange_once(worker=worker, items=items)
        except OperationalError as exc:
            # Two exchanges whose leads share phones take the fingerprint locks in sorted order (one
            # insert per exchange), but an exchange whose items repeat a job ingests item by item
            # (`_reports_exchange_each`), and a v1 report of the same phones may interleave with
            # it: should PostgreSQL still abort one of them, nothing was seen yet, so run it again.
            if not _is_deadlock(exc) or attempt == _DEADLOCK_TRIES - 1 or connection.in_atomic_block:
                raise
    raise AssertionError("unreachable")


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _reports_exchange_once(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    calls = [item for item in items if isinstance(item, ReportCall)]
    if len({call.job_id for call in calls}) == len({call.idempotency_key for call in calls}) == len(calls):
        return _reports_exchange_set(worker=worker, items=items)
    # The same job or key twice in one exchange (say a partial chunk, then the outcome): each item
    # must see the one before it, so they run one after another, each in its own savepoint.
    return _reports_exchange_each(worker=worker, items=items)


def _reports_exchange_each(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    results: list[ReportResult] = []
    tail = ReportTail()
    with events.atomic():
        # One statement locks every reported job, in id order: two exchanges (or an exchange and a
        # staff action) then never wait for each other's jobs in opposite orders.
        job_ids = sorted({item.job_id for item in items if isinstance(item, ReportCall)})
        if job_ids:
            list(Job.objects.select_for_update(of=("self",)).filter(pk__in=job_ids).order_by("pk")
                 .values_list("pk", flat=True))
        for item in items:
            if isinstance(item, ReportResult):
                results.append(item)
                continue
            try:
                with transaction.atomic():
                    taken = ReportTail()
                    result = job_report(
                        worker=worker, job_id=item.job_id, attempt_id=item.attempt_id,
                        outcome=item.outcome, leads=item.leads, error=item.error,
                        idempotency_key=item.idempotency_key, request_hash=item.request_hash,
                        tail=taken, log_tail=item.log_tail,
                    )
                # Merged only once the item's savepoint was released: a failed item counts nothing.
                tail.amounts.update(taken.amounts)
                tail.outcomes.extend(taken.outcomes)
            except ProtocolError as exc:
                result = ReportResult(status=exc.status, body=error_body(exc.code, exc.message, exc.fields))
            results.append(result)
        # The shared rows last, as the v1 report does: every report updates the same /metrics rows
        # and every report of a provider the same breaker bucket, so their locks are held shortest.
        _tail_write(worker=worker, tail=tail, now=clock_now())
    return results


@dataclass
class _Fresh:
    """An item that passed every check and is taken: its job and attempt."""

    index: int
    call: ReportCall
    job: Job
    attempt: JobAttempt


def _reports_exchange_set(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    """Every job has at most one item: check all items first, then write them all together.

    The checks are those of `job_report`, in its order (job, receipt, attempt), made on rows read
    with one statement each; an item that fails one is answered with that error and writes nothing,
    so no savepoint is needed. Then: the leads (one ingestion call for all items), one bulk update of the
    attempts, one of the jobs, one insert of the receipts, the shared rows, and the events.
    """
    now = clock_now()
    results: list[ReportResult | None] = [item if isinstance(item, ReportResult) else None for item in items]
    calls = [(index, item) for index, item in enumerate(items) if isinstance(item, ReportCall)]
    with events.atomic():
        jobs = {job.pk: job for job in Job.objects.select_for_update(of=("self",)).select_related("provider")
                .filter(pk__in=sorted(call.job_id for _, call in calls if 0 < call.job_id <= _MAX_BIGINT))
                .order_by("pk")}
        receipts = {receipt.idempotency_key: receipt for receipt in ReportReceipt.objects.filter(
            worker_id=worker.pk, idempotency_key__in={call.idempotency_key for _, call in calls})}
        attempts = JobAttempt.objects.in_bulk([call.attempt_id for _, call in calls])
        fresh: list[_Fresh] = []
        for index, call in calls:
            try:
                job = jobs.get(call.job_id)
                if job is None:
                    raise JobNotFound()
                receipt = receipts.get(call.idempotency_key)
                if receipt is not None:
                    if receipt.request_hash != call.request_hash:
                        raise IdempotencyKeyReused()
                    results[index] = ReportResult(status=200, body=receipt.response)
                    continue
                attempt = _attempt_check(job=job, worker=worker, attempt=attempts.get(call.attempt_id))
            except ProtocolError as exc:
                results[index] = ReportResult(status=exc.status,
                                              body=error_body(exc.code, exc.message, exc.fields))
                continue
            fresh.append(_Fresh(index=index, call=call, job=job, attempt=attempt))
        if fresh:
            _fresh_write(worker=worker, fresh=fresh, results=results, now=now)
    return [result for result in results if result is not None]


def _fresh_write(*, worker: Worker, fresh: list[_Fresh], results: list[ReportResult | None],
                 now: dt.datetime) -> None:
    tail = ReportTail()
    receipts: list[ReportReceipt] = []
    # One ingest call for every item's leads, in item order: a number two items carry is added for
    # the first and a duplicate for the second, as if they had been reported one after the other.
    ingested = lead_batches_ingest(batches=[
        IngestBatch(rows=item.call.leads, provider=item.job.provider.name, worker_id=worker.pk,
                    job_id=item.job.pk, attempt_id=item.attempt.pk) for item in fresh], received_at=now)
    for item, result in zip(fresh, ingested, strict=True):
        job, attempt, call = item.job, item.attempt, item.call
        body = report_counts_body(result)
        who = {"job_id": job.pk, "provider": job.provider.name, "worker_id": worker.pk}
        events.publish("leads.ingested", **who, added=result.added, duplicates=result.duplicates,
                       invalid=result.invalid)
        attempt.reports += 1
        if call.log_tail is not None:
            attempt.log_tail = log_tail_masked(call.log_tail)
        attempt.leads_added += result.added
        attempt.leads_duplicates += result.duplicates
        attempt.leads_invalid += result.invalid
        job.leads_added += result.added
        job.updated_at = now
        if call.outcome == ReportOutcome.PARTIAL:
            # As `_lease_renew`: a job the reaper queued but nobody claimed is still this attempt's.
            expires = now + dt.timedelta(seconds=job.provider.lease_seconds)
            job.state, job.leased_by_id, job.lease_expires_at = JobState.LEASED, worker.pk, expires
            attempt.lease_expires_at = expires
            if attempt.state == AttemptState.LOST:
                attempt.state = AttemptState.RUNNING
            body.update(job_state=JobState.LEASED, lease_expires_at=expires.isoformat())
        elif call.outcome == ReportOutcome.SUCCEEDED:
            attempt.state, attempt.finished_at = AttemptState.SUCCEEDED, now
            job.state, job.finished_at = JobState.SUCCEEDED, now
            job.leased_by_id, job.lease_expires_at = None, None
            body["job_state"] = JobState.SUCCEEDED
            events.publish("job.succeeded", **who, attempt=attempt.number, added=attempt.leads_added,
                           duplicates=attempt.leads_duplicates, invalid=attempt.leads_invalid)
        else:
            attempt.state, attempt.finished_at, attempt.error = AttemptState.FAILED, now, call.error
            state, reason, update = job_fail_decide(job=job, error=call.error, now=now)
            for name, value in update.items():
                setattr(job, name, value)
            job_fail_publish(job=job, state=state, reason=reason, error=call.error, update=update,
                             worker_id=worker.pk, attempt=attempt.number)
            body["job_state"] = state
        receipts.append(ReportReceipt(worker_id=worker.pk, idempotency_key=call.idempotency_key,
                                      request_hash=call.request_hash, job=job, response=body, created_at=now))
        tail.amounts.update({"reports": 1, "leads_added": result.added, "leads_duplicates": result.duplicates,
                             "leads_invalid": result.invalid})
        if call.outcome != ReportOutcome.PARTIAL:
            tail.outcomes.append((job.provider, call.outcome == ReportOutcome.FAILED))
        results[item.index] = ReportResult(status=200, body=body)
    # The rows were read under the jobs' locks, and every write to a job or its attempt takes that
    # lock first: writing their new values whole is as safe as the v1 report's F() increments.
    _rows_set(model=JobAttempt, rows=[item.attempt for item in fresh], fields=_ATTEMPT_FIELDS)
    _rows_set(model=Job, rows=[item.job for item in fresh], fields=_JOB_FIELDS)
    ReportReceipt.objects.bulk_create(receipts)
    _tail_write(worker=worker, tail=tail, now=now)


_ATTEMPT_FIELDS = ["state", "lease_expires_at", "finished_at", "error", "reports", "leads_added",
                   "leads_duplicates", "leads_invalid", "log_tail"]
_JOB_FIELDS = ["state", "run_at", "leased_by", "lease_expires_at", "last_error", "dead_reason", "leads_added",
               "finished_at", "updated_at"]


def _rows_set(*, model: type[models.Model], rows: Sequence[models.Model], fields: list[str]) -> None:
    """Write these columns of these rows in one UPDATE, the new values sent as one JSON parameter.

    Django's `bulk_update` builds a CASE WHEN per column and row: at 10 rows and 9 columns that was
    over half of an exchange's server CPU (docs/PERFORMANCE.md, "Exchange"). Values are adapted as
    the ORM would store them (on SQLite: its text forms of datetimes, UUIDs and JSON).
    """
    table = model._meta.db_table
    pk = model._meta.pk
    assert pk is not None
    # Concrete columns only (never a reverse relation), which is what `fields` names.
    columns: list[Any] = [model._meta.get_field(name) for name in fields]
    everything: list[Any] = [pk, *columns]
    if connection.vendor == "postgresql":
        payload = [{f.column: f.value_from_object(row) for f in everything} for row in rows]
        types = ", ".join(f"{f.column} {f.db_type(connection)}" for f in everything)
        assignments = ", ".join(f"{f.column} = v.{f.column}" for f in columns)
        sql = (f"UPDATE {table} AS t SET {assignments} FROM json_to_recordset(%s::json) AS v({types}) "
               f"WHERE t.{pk.column} = v.{pk.column}")
    else:
        payload = [{f.column: f.get_db_prep_value(f.value_from_object(row), connection, prepared=False)
                    for f in everything} for row in rows]
        picks = ", ".join(f"json_extract(value, '$.{f.column}') AS {f.column}" for f in everything)
        assignments = ", ".join(f"{f.column} = v.{f.column}" for f in columns)
        sql = (f"UPDATE {table} SET {assignments} FROM (SELECT {picks} FROM json_each(%s)) AS v "
               f"WHERE {table}.{pk.column} = v.{pk.column}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [json_bytes(payload).decode()])
        if cursor.rowcount != len(rows):
            # The rows are locked by this transaction: a miss means the statement above is wrong.
            raise RuntimeError(f"{table}: updated {cursor.rowcount} rows of {len(rows)}.")


def _tail_write(*, worker: Worker, tail: ReportTail, now: dt.datetime) -> None:
    """The rows every report shares, last before COMMIT (their locks are the hottest)."""
    if tail.amounts:
        metric_totals_add(amounts=dict(tail.amounts))
    per_provider: dict[int, tuple[Provider, int, int]] = {}
    for provider, failed in tail.outcomes:
        _, ok, bad = per_provider.get(provider.pk, (provider, 0, 0))
        per_provider[provider.pk] = (provider, ok + (not failed), bad + failed)
    for provider, ok, bad in per_provider.values():
        _breaker_outcome(provider=provider, worker=worker, failed=bad > 0, now=now, counts=(ok, bad))
