"""The job state machine of a report: one decision and one batched write, for the v1 report and the exchange.

`report_outcome_decide` is the only place that says where a report moves its job and attempt
(docs/SYSTEM_OVERVIEW.md, "The job state machine"); `reports_apply` writes the moves of one or many
checked reports with a constant number of statements. `job_report` calls it with one report, the
exchange with all its items.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from core import events
from core.counters import metric_totals_add
from core.db import rows_insert, rows_update
from core.logging import mask_pii
from ingestion.schema import LeadInput
from ingestion.services import IngestBatch, IngestResult, lead_batches_ingest
from queueing.models import AttemptState, Job, JobAttempt, JobState, Provider, ReportReceipt
from queueing.services.breakers import breaker_outcome_record
from queueing.services.enqueue import backoff_delay_s
from workers_mgmt.models import Worker

# A report's `log_tail`: at most this much of the worker's own log (docs/API.md).
MAX_LOG_TAIL_BYTES = 16 * 1024


class ReportOutcome(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"


@dataclass(frozen=True)
class ReportCall:
    """One report, parsed and checked as docs/API.md says (a v1 report, or one exchange item)."""

    job_id: int
    attempt_id: uuid.UUID
    outcome: str
    leads: list[LeadInput]
    error: dict[str, Any] | None
    idempotency_key: str
    request_hash: str
    log_tail: str | None = None


@dataclass(frozen=True)
class ReportResult:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class ReportMove:
    """Where one report moves its job and its attempt."""

    job_state: str
    attempt_state: str
    # DEAD: why; QUEUED: when the job is ready again (the backoff); LEASED (partial): the new lease.
    dead_reason: str = ""
    run_at: dt.datetime | None = None
    lease_expires_at: dt.datetime | None = None


def report_outcome_decide(*, job: Job, outcome: str, error: dict[str, Any] | None, now: dt.datetime
                          ) -> ReportMove:
    """Decide the next job and attempt state of a report on `job`'s current attempt (read under its lock).

    `partial` renews the lease (a lapsed attempt takes its job back); `succeeded` finishes both;
    `failed` retries after the provider's backoff, or dead-letters the job when the error is not
    retryable or its attempts are spent.
    """
    if outcome == ReportOutcome.PARTIAL:
        expires = now + dt.timedelta(seconds=job.provider.lease_seconds)
        return ReportMove(job_state=JobState.LEASED, attempt_state=AttemptState.RUNNING,
                          lease_expires_at=expires)
    if outcome == ReportOutcome.SUCCEEDED:
        return ReportMove(job_state=JobState.SUCCEEDED, attempt_state=AttemptState.SUCCEEDED)
    retryable = True if error is None else bool(error.get("retryable", True))
    if not retryable:
        return ReportMove(job_state=JobState.DEAD, attempt_state=AttemptState.FAILED,
                          dead_reason="non_retryable_error")
    if job.attempts >= job.max_attempts:
        return ReportMove(job_state=JobState.DEAD, attempt_state=AttemptState.FAILED,
                          dead_reason="max_attempts")
    provider = job.provider
    delay = backoff_delay_s(attempt=job.attempts, base_s=provider.backoff_base_s,
                            cap_s=provider.backoff_cap_s)
    return ReportMove(job_state=JobState.QUEUED, attempt_state=AttemptState.FAILED,
                      run_at=now + dt.timedelta(seconds=delay))


def _move_set(*, move: ReportMove, job: Job, attempt: JobAttempt, worker: Worker,
              error: dict[str, Any] | None, now: dt.datetime) -> None:
    """Set a decided move on the rows read under the job's lock (written by `reports_apply`)."""
    job.state, attempt.state, job.updated_at = move.job_state, move.attempt_state, now
    if move.job_state == JobState.LEASED:
        # A job the reaper put back in the queue but nobody claimed yet is still this attempt's:
        # renewing takes it back rather than letting a second worker redo the work.
        job.leased_by_id, job.lease_expires_at = worker.pk, move.lease_expires_at
        attempt.lease_expires_at = move.lease_expires_at
        return
    job.leased_by_id, job.lease_expires_at = None, None
    attempt.finished_at = now
    if move.job_state == JobState.SUCCEEDED:
        job.finished_at = now
        return
    attempt.error = job.last_error = error
    if move.job_state == JobState.DEAD:
        job.dead_reason, job.finished_at = move.dead_reason, now
    else:
        assert move.run_at is not None
        job.run_at = move.run_at


@dataclass
class ReportTotals:
    """What reports add to the rows every report shares (the /metrics totals, the breaker buckets).

    Written once, last before COMMIT, so no report holds those hot locks while another waits.
    """

    amounts: Counter[str] = field(default_factory=Counter)
    outcomes: list[tuple[Provider, bool]] = field(default_factory=list)

    def merge(self, other: ReportTotals) -> None:
        self.amounts.update(other.amounts)
        self.outcomes.extend(other.outcomes)

    def write(self, *, worker: Worker, now: dt.datetime) -> None:
        if self.amounts:
            metric_totals_add(amounts=dict(self.amounts))
        per_provider: dict[int, tuple[Provider, int, int]] = {}
        for provider, failed in self.outcomes:
            _, ok, bad = per_provider.get(provider.pk, (provider, 0, 0))
            per_provider[provider.pk] = (provider, ok + (not failed), bad + failed)
        for provider, ok, bad in per_provider.values():
            breaker_outcome_record(provider=provider, worker=worker, failed=bad > 0, now=now,
                                   counts=(ok, bad))


@dataclass(frozen=True)
class TakenReport:
    """A report that passed every check: its call, and its job and attempt read under the job's lock."""

    call: ReportCall
    job: Job
    attempt: JobAttempt


def log_tail_masked(text: str) -> str:
    """A worker's log tail as it is stored: phones and e-mail addresses masked, like the portal's logs."""
    return mask_pii(text)


def report_counts_body(result: IngestResult) -> dict[str, Any]:
    """The lead counts of a report's answer: one shape for the v1 report and every exchange item."""
    return {"added": result.added, "duplicates": result.duplicates, "invalid": result.invalid,
            "suppressed": result.suppressed}


_ATTEMPT_FIELDS = ["state", "lease_expires_at", "finished_at", "error", "reports", "leads_added",
                   "leads_duplicates", "leads_invalid", "log_tail"]
_JOB_FIELDS = ["state", "run_at", "leased_by", "lease_expires_at", "last_error", "dead_reason", "leads_added",
               "finished_at", "updated_at"]


def reports_apply(*, worker: Worker, taken: list[TakenReport], now: dt.datetime,
                  totals: ReportTotals | None = None) -> list[ReportResult]:
    """Ingest the leads of checked reports, move their jobs and attempts, store their receipts.

    One ingestion call, one UPDATE of the attempts, one of the jobs and one INSERT of the receipts,
    however many reports. The shared rows are written last, or, given `totals`, added to it for
    the caller to write (the exchange, once for all its items).
    """
    own_totals = ReportTotals()
    receipts: list[ReportReceipt] = []
    results: list[ReportResult] = []
    # One ingest call for every report's leads, in order: a number two reports carry is added for
    # the first and a duplicate for the second, as if they had been reported one after the other.
    ingested = lead_batches_ingest(batches=[
        IngestBatch(rows=item.call.leads, provider=item.job.provider.name, worker_id=worker.pk,
                    job_id=item.job.pk, attempt_id=item.attempt.pk) for item in taken], received_at=now)
    for item, result in zip(taken, ingested, strict=True):
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
        move = report_outcome_decide(job=job, outcome=call.outcome, error=call.error, now=now)
        _move_set(move=move, job=job, attempt=attempt, worker=worker, error=call.error, now=now)
        body["job_state"] = move.job_state
        if move.lease_expires_at is not None:
            body["lease_expires_at"] = move.lease_expires_at.isoformat()
        _move_publish(move=move, who=who, attempt=attempt, error=call.error)
        receipts.append(ReportReceipt(worker_id=worker.pk, idempotency_key=call.idempotency_key,
                                      request_hash=call.request_hash, job=job, response=body, created_at=now))
        own_totals.amounts.update({"reports": 1, "leads_added": result.added,
                                   "leads_duplicates": result.duplicates, "leads_invalid": result.invalid,
                                   "leads_suppressed": result.suppressed})
        if call.outcome != ReportOutcome.PARTIAL:
            own_totals.outcomes.append((job.provider, call.outcome == ReportOutcome.FAILED))
        results.append(ReportResult(status=200, body=body))
    # The rows were read under the jobs' locks, and every write to a job or its attempt takes that
    # lock first: writing their new values whole is as safe as F() increments.
    rows_update(model=JobAttempt, rows=[item.attempt for item in taken], fields=_ATTEMPT_FIELDS)
    rows_update(model=Job, rows=[item.job for item in taken], fields=_JOB_FIELDS)
    rows_insert(model=ReportReceipt, rows=receipts)
    if totals is not None:
        totals.merge(own_totals)
    else:
        own_totals.write(worker=worker, now=now)
    return results


def _move_publish(*, move: ReportMove, who: dict[str, Any], attempt: JobAttempt,
                  error: dict[str, Any] | None) -> None:
    if move.job_state == JobState.SUCCEEDED:
        # The attempt's totals over all its chunks, this report's included.
        events.publish("job.succeeded", **who, attempt=attempt.number, added=attempt.leads_added,
                       duplicates=attempt.leads_duplicates, invalid=attempt.leads_invalid)
    elif move.job_state == JobState.DEAD:
        events.publish("job.dead", **who, attempt=attempt.number, reason=move.dead_reason)
    elif move.job_state == JobState.QUEUED:
        assert move.run_at is not None
        # The code is the worker's own string: capped, and never the free-text message.
        events.publish("job.failed", **who, attempt=attempt.number,
                       error_code=str((error or {}).get("code") or "unknown")[:64],
                       retry_at=move.run_at.isoformat())
