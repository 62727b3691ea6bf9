"""Reports: exactly-once under an Idempotency-Key, leads handed to ingestion."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.utils.timezone import now as clock_now

from core import events
from core.text import json_bytes
from ingestion.schema import LeadInput
from queueing.models import ReportReceipt
from queueing.services.errors import IdempotencyKeyReused
from queueing.services.leases import attempt_checked, job_locked
from queueing.services.outcome import ReportCall, ReportResult, ReportTotals, TakenReport, reports_apply
from workers_mgmt.models import Worker


def report_request_hash(*, job_id: int, body: dict[str, Any]) -> str:
    """What makes two reports 'the same': the job and the parsed body, canonically encoded."""
    request = {"job": job_id, "body": body}
    # Sorted keys and no whitespace, so key order and spacing never make a retry look different.
    return hashlib.sha256(json_bytes(request, sort_keys=True)).hexdigest()


def job_report(
    *, worker: Worker, job_id: int, attempt_id: uuid.UUID, outcome: str, leads: list[LeadInput],
    error: dict[str, Any] | None, idempotency_key: str, request_hash: str,
    totals: ReportTotals | None = None, log_tail: str | None = None,
) -> ReportResult:
    """Take a worker's report of an attempt: ingest its leads and move the job, exactly once.

    The checks (job, receipt, attempt, in that order) are docs/API.md's; the move is
    `reports_apply`'s, the same as an exchange item's. `totals`, when given, collects the writes to
    rows that every report shares instead of making them at once: the exchange makes them once,
    just before its COMMIT (docs/API.md, "Exchange").
    """
    now = clock_now()
    call = ReportCall(job_id=job_id, attempt_id=attempt_id, outcome=outcome, leads=leads, error=error,
                      idempotency_key=idempotency_key, request_hash=request_hash, log_tail=log_tail)
    with events.atomic():
        job = job_locked(job_id)
        # The receipt is looked up under the job's lock, so a concurrent copy of this very report
        # that just committed is seen, and its answer is the one given.
        receipt = _receipt_find(worker=worker, key=idempotency_key, request_hash=request_hash)
        if receipt is not None:
            return receipt
        attempt = attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        (result,) = reports_apply(worker=worker, taken=[TakenReport(call=call, job=job, attempt=attempt)],
                                  now=now, totals=totals)
    return result


def _receipt_find(*, worker: Worker, key: str, request_hash: str) -> ReportResult | None:
    receipt = ReportReceipt.objects.filter(worker_id=worker.pk, idempotency_key=key).first()
    if receipt is None:
        return None
    if receipt.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return ReportResult(status=200, body=receipt.response)
