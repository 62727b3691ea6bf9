"""Exchange (protocol v1.1): many reports of one worker in one transaction.

Each item is exactly the v1 report, with its own Idempotency-Key: the same checks, the same move
(`reports_apply`, see `outcome.py`), the same answer, and a replay returns the first answer. One
item's failure is that item's answer and undoes nothing else (docs/API.md, "Exchange"). The claim
runs after this transaction commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils.timezone import now as clock_now

from core import events
from core.db import FixedRead, pipelined, rows_together
from core.errors import ProtocolError, error_body
from queueing.models import Job, JobAttempt, Provider, ReportReceipt
from queueing.services.errors import IdempotencyKeyReused, JobNotFound
from queueing.services.leases import MAX_JOB_ID, attempt_check
from queueing.services.outcome import ReportCall, ReportResult, ReportTotals, TakenReport, reports_apply
from queueing.services.report import job_report
from workers_mgmt.models import Worker

# A deadlock aborts the whole transaction, which nothing has seen yet: it is safe to run again.
_DEADLOCK_TRIES = 3


def reports_exchange(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    """Take many reports of one worker in one transaction; returns one result per item, in order.

    An item given as a `ReportResult` already failed its parsing (its error answer is passed
    through untouched).
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


def _error_result(exc: ProtocolError) -> ReportResult:
    return ReportResult(status=exc.status, body=error_body(exc.code, exc.message, exc.fields))


def _reports_exchange_each(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    results: list[ReportResult] = []
    totals = ReportTotals()
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
                    taken = ReportTotals()
                    result = job_report(
                        worker=worker, job_id=item.job_id, attempt_id=item.attempt_id,
                        outcome=item.outcome, leads=item.leads, error=item.error,
                        idempotency_key=item.idempotency_key, request_hash=item.request_hash,
                        totals=taken, log_tail=item.log_tail,
                    )
                # Merged only once the item's savepoint was released: a failed item counts nothing.
                totals.merge(taken)
            except ProtocolError as exc:
                result = _error_result(exc)
            results.append(result)
        # The shared rows last, as the v1 report does: every report updates the same /metrics rows
        # and every report of a provider the same breaker bucket, so their locks are held shortest.
        totals.write(worker=worker, now=clock_now())
    return results


def _report_reads(*, worker: Worker, job_ids: list[int], keys: list[str],
                  attempt_ids: list[uuid.UUID]) -> tuple[Any, Any, Any, Any]:
    """The report's four reads: its jobs locked in id order, their providers, the worker's receipts
    under these keys, the attempts. On PostgreSQL as statements written once (an array parameter
    each: one shape however many items), which the ORM compiled anew for every exchange."""
    if connection.vendor != "postgresql":
        return (Job.objects.select_for_update(of=("self",)).filter(pk__in=job_ids).order_by("pk"),
                Provider.objects.filter(jobs__pk__in=job_ids).distinct(),
                ReportReceipt.objects.filter(worker_id=worker.pk, idempotency_key__in=keys),
                JobAttempt.objects.filter(pk__in=attempt_ids))
    jobs = Job._meta.db_table

    def read(model: Any, values: list[Any], where: str, params: list[Any], tail: str = "") -> Any:
        # Nothing to look for sends nothing, as the ORM skips `pk__in=[]`.
        return FixedRead(model, where, params, tail) if values else model.objects.none()

    return (read(Job, job_ids, "id = ANY(%s::bigint[])", [job_ids], "ORDER BY id FOR UPDATE"),
            read(Provider, job_ids, f"id IN (SELECT provider_id FROM {jobs} WHERE id = ANY(%s::bigint[]))",
                 [job_ids]),
            read(ReportReceipt, keys, "worker_id = %s AND idempotency_key = ANY(%s::text[])",
                 [worker.pk, keys]),
            read(JobAttempt, attempt_ids, "id = ANY(%s::uuid[])", [attempt_ids]))


@dataclass
class _Checked:
    """An item that passed every check, and where its answer goes."""

    index: int
    taken: TakenReport


def _reports_exchange_set(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    """Every job has at most one item: check all items first, then write them all together.

    The checks are those of `job_report`, in its order (job, receipt, attempt), made on rows read
    with one statement each; an item that fails one is answered with that error and writes nothing,
    so no savepoint is needed. Then `reports_apply` writes every item that passed, at once.
    """
    now = clock_now()
    results: list[ReportResult | None] = [item if isinstance(item, ReportResult) else None for item in items]
    calls = [(index, item) for index, item in enumerate(items) if isinstance(item, ReportCall)]
    # Pipelined (core/db/pipeline.py): the four reads go out together, the jobs' lock first, so
    # the receipts and attempts are still read under it; and the writes after the ingest
    # (attempts, jobs, receipts, counters, breaker buckets) go out without waiting for each other.
    job_ids = sorted(call.job_id for _, call in calls if 0 < call.job_id <= MAX_JOB_ID)
    with events.atomic(), pipelined():
        locked, providers, receipt_rows, attempt_rows = rows_together(*_report_reads(
            worker=worker, job_ids=job_ids, keys=sorted({call.idempotency_key for _, call in calls}),
            attempt_ids=[call.attempt_id for _, call in calls]))
        by_id = {provider.pk: provider for provider in providers}
        for job in locked:
            job.provider = by_id[job.provider_id]
        jobs = {job.pk: job for job in locked}
        receipts = {receipt.idempotency_key: receipt for receipt in receipt_rows}
        attempts = {attempt.pk: attempt for attempt in attempt_rows}
        checked: list[_Checked] = []
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
                attempt = attempt_check(job=job, worker=worker, attempt=attempts.get(call.attempt_id))
            except ProtocolError as exc:
                results[index] = _error_result(exc)
                continue
            checked.append(_Checked(index=index, taken=TakenReport(call=call, job=job, attempt=attempt)))
        if checked:
            applied = reports_apply(worker=worker, taken=[item.taken for item in checked], now=now)
            for item, result in zip(checked, applied, strict=True):
                results[item.index] = result
    return [result for result in results if result is not None]
