"""Reports: exactly-once under an Idempotency-Key, leads handed to ingestion."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import F
from django.utils.timezone import now as clock_now

from core import events
from core.counters import metric_totals_add
from core.logging import mask_pii
from core.text import json_bytes
from ingestion.schema import LeadInput
from ingestion.services import IngestResult, lead_batch_ingest
from queueing.models import (
    AttemptState,
    Job,
    JobAttempt,
    JobState,
    Provider,
    ReportReceipt,
)
from queueing.services.breakers import _breaker_outcome
from queueing.services.enqueue import backoff_delay_s
from queueing.services.errors import IdempotencyKeyReused
from queueing.services.leases import _attempt_checked, _job_locked, _lease_renew
from workers_mgmt.models import Worker


class ReportOutcome(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"


@dataclass
class ReportTail:
    """The shared-row writes of one or more reports, made together at the end (see job_report)."""

    amounts: Counter[str] = field(default_factory=Counter)
    outcomes: list[tuple[Provider, bool]] = field(default_factory=list)


@dataclass(frozen=True)
class ReportResult:
    status: int
    body: dict[str, Any]


# A report's `log_tail`: at most this much of the worker's own log (docs/API.md).
MAX_LOG_TAIL_BYTES = 16 * 1024


def log_tail_masked(text: str) -> str:
    """A worker's log tail as it is stored: phones and e-mail addresses masked, like the portal's logs."""
    return mask_pii(text)


def report_counts_body(result: IngestResult) -> dict[str, Any]:
    """The lead counts of a report's answer: one shape for the v1 report and every exchange item."""
    return {"added": result.added, "duplicates": result.duplicates, "invalid": result.invalid,
            "suppressed": result.suppressed}


def report_request_hash(*, job_id: int, body: dict[str, Any]) -> str:
    """What makes two reports 'the same': the job and the parsed body, canonically encoded."""
    request = {"job": job_id, "body": body}
    # Sorted keys and no whitespace, so key order and spacing never make a retry look different.
    return hashlib.sha256(json_bytes(request, sort_keys=True)).hexdigest()


def job_report(
    *, worker: Worker, job_id: int, attempt_id: uuid.UUID, outcome: str, leads: list[LeadInput],
    error: dict[str, Any] | None, idempotency_key: str, request_hash: str,
    tail: ReportTail | None = None, log_tail: str | None = None,
) -> ReportResult:
    """Take a worker's report of an attempt: ingest its leads and move the job, exactly once.

    `tail`, when given, collects the writes to rows that every report shares (the /metrics totals,
    the breaker buckets) instead of making them at once: the exchange makes them once, just before
    its COMMIT, so no item holds those locks while a later item waits (docs/API.md, "Exchange").
    """
    now = clock_now()
    with events.atomic():
        job = _job_locked(job_id)
        # The receipt is looked up under the job's lock, so a concurrent copy of this very report
        # that just committed is seen, and its answer is the one given.
        receipt = _receipt_find(worker=worker, key=idempotency_key, request_hash=request_hash)
        if receipt is not None:
            return receipt
        attempt = _attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        result = lead_batch_ingest(rows=leads, provider=job.provider.name, worker_id=worker.pk,
                                   job_id=job.pk, attempt_id=attempt.pk, received_at=now)
        attempt_counts: dict[str, Any] = {
            "reports": F("reports") + 1,
            "leads_added": F("leads_added") + result.added,
            "leads_duplicates": F("leads_duplicates") + result.duplicates,
            "leads_invalid": F("leads_invalid") + result.invalid,
        }
        if log_tail is not None:
            attempt_counts["log_tail"] = log_tail_masked(log_tail)
        body = report_counts_body(result)
        who = {"job_id": job.pk, "provider": job.provider.name, "worker_id": worker.pk}
        events.publish("leads.ingested", **who, added=result.added, duplicates=result.duplicates,
                       invalid=result.invalid)
        if outcome == ReportOutcome.PARTIAL:
            expires = now + dt.timedelta(seconds=job.provider.lease_seconds)
            _lease_renew(job=job, attempt=attempt, worker=worker, expires=expires, now=now)
            JobAttempt.objects.filter(pk=attempt.pk).update(**attempt_counts)
            Job.objects.filter(pk=job.pk).update(leads_added=F("leads_added") + result.added)
            body.update(job_state=JobState.LEASED, lease_expires_at=expires.isoformat())
        elif outcome == ReportOutcome.SUCCEEDED:
            JobAttempt.objects.filter(pk=attempt.pk).update(
                state=AttemptState.SUCCEEDED, finished_at=now, **attempt_counts
            )
            Job.objects.filter(pk=job.pk).update(
                state=JobState.SUCCEEDED, finished_at=now, leased_by=None, lease_expires_at=None,
                leads_added=F("leads_added") + result.added, updated_at=now,
            )
            body["job_state"] = JobState.SUCCEEDED
            # The attempt's totals over all its chunks (the row was read before this report's update).
            events.publish("job.succeeded", **who, attempt=attempt.number,
                           added=attempt.leads_added + result.added,
                           duplicates=attempt.leads_duplicates + result.duplicates,
                           invalid=attempt.leads_invalid + result.invalid)
        else:
            JobAttempt.objects.filter(pk=attempt.pk).update(
                state=AttemptState.FAILED, finished_at=now, error=error, **attempt_counts
            )
            body["job_state"] = _job_fail(job=job, error=error, now=now, added=result.added,
                                          worker_id=worker.pk, attempt=attempt.number)
        ReportReceipt.objects.create(
            worker_id=worker.pk, idempotency_key=idempotency_key, request_hash=request_hash,
            job=job, response=body, created_at=now,
        )
        amounts = {"reports": 1, "leads_added": result.added, "leads_duplicates": result.duplicates,
                   "leads_invalid": result.invalid}
        if tail is not None:
            tail.amounts.update(amounts)
        else:
            metric_totals_add(amounts=amounts)
        if outcome != ReportOutcome.PARTIAL:
            # Last before COMMIT: the provider's outcome bucket is one row that every report of the
            # provider updates within 10 s, so its row lock should be held for as short as possible.
            failed = outcome == ReportOutcome.FAILED
            if tail is not None:
                tail.outcomes.append((job.provider, failed))
            else:
                _breaker_outcome(provider=job.provider, worker=worker, failed=failed, now=now)
    return ReportResult(status=200, body=body)


def _job_fail(*, job: Job, error: dict[str, Any] | None, now: dt.datetime, added: int, worker_id: str,
              attempt: int) -> str:
    """Retry with backoff, or move the job to the dead-letter queue with its reason."""
    state, reason, update = job_fail_decide(job=job, error=error, now=now)
    Job.objects.filter(pk=job.pk).update(**update, leads_added=F("leads_added") + added)
    job_fail_publish(job=job, state=state, reason=reason, error=error, update=update, worker_id=worker_id,
                     attempt=attempt)
    return state


def job_fail_decide(*, job: Job, error: dict[str, Any] | None, now: dt.datetime
                    ) -> tuple[str, str, dict[str, Any]]:
    """The failed attempt's next job state, its dead reason, and the job's columns to write."""
    retryable = True if error is None else bool(error.get("retryable", True))
    if not retryable:
        state, reason = JobState.DEAD, "non_retryable_error"
    elif job.attempts >= job.max_attempts:
        state, reason = JobState.DEAD, "max_attempts"
    else:
        state, reason = JobState.QUEUED, ""
    update: dict[str, Any] = {
        "state": state, "leased_by": None, "lease_expires_at": None, "last_error": error, "updated_at": now,
    }
    if state == JobState.DEAD:
        update.update(dead_reason=reason, finished_at=now)
    else:
        provider = job.provider
        delay = backoff_delay_s(attempt=job.attempts, base_s=provider.backoff_base_s,
                                cap_s=provider.backoff_cap_s)
        update["run_at"] = now + dt.timedelta(seconds=delay)
    return state, reason, update


def job_fail_publish(*, job: Job, state: str, reason: str, error: dict[str, Any] | None,
                     update: dict[str, Any], worker_id: str, attempt: int) -> None:
    who = {"job_id": job.pk, "attempt": attempt, "provider": job.provider.name, "worker_id": worker_id}
    if state == JobState.DEAD:
        events.publish("job.dead", **who, reason=reason)
    else:
        # The code is the worker's own string: capped, and never the free-text message.
        events.publish("job.failed", **who, error_code=str((error or {}).get("code") or "unknown")[:64],
                       retry_at=update["run_at"].isoformat())


def _receipt_find(*, worker: Worker, key: str, request_hash: str) -> ReportResult | None:
    receipt = ReportReceipt.objects.filter(worker_id=worker.pk, idempotency_key=key).first()
    if receipt is None:
        return None
    if receipt.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return ReportResult(status=200, body=receipt.response)
