"""Every write of the job queue: enqueue, claim, extend, release, report, reap, cancel, requeue.

Each function is one transaction. State changes are compare-and-swap (`filter(state=X).update()`
with a count check) or happen under a row lock, never read-modify-write across two queries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, CharField, DateTimeField, F, Q, Value, When

from ingestion.schema import LeadInput
from ingestion.services import lead_batch_ingest
from leadops import events
from leadops.clock import now as clock_now
from leadops.errors import Conflict, Forbidden, NotFound, ValidationFailed
from queueing.models import (
    FINISHED_STATES,
    AttemptState,
    Campaign,
    Job,
    JobAttempt,
    JobState,
    Provider,
    ReportReceipt,
)
from workers_mgmt.models import Worker


class AttemptSuperseded(Conflict):
    code = "attempt_superseded"
    message = "A newer attempt of this job exists; this report changes nothing."


class JobFinished(Conflict):
    code = "job_finished"
    message = "The job is already finished."


class AttemptNotOwned(Forbidden):
    code = "attempt_not_owned"
    message = "This attempt belongs to another worker."


class JobNotFound(NotFound):
    code = "job_not_found"
    message = "No such job."


class AttemptNotFound(NotFound):
    code = "attempt_not_found"
    message = "No such attempt for this job."


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."


# --- backoff -------------------------------------------------------------------------------------


def backoff_delay_s(*, attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """DESIGN.md section 7: d = min(cap, base * 2**(attempt-1)); wait d/2 + random(0, d/2)."""
    exponent = max(0, attempt - 1)
    # Cap the exponent before computing 2**n so a huge attempt number cannot overflow a float.
    d = float(cap_s) if exponent >= 62 else min(float(cap_s), float(base_s) * (2**exponent))
    return d / 2 + (rng or random).uniform(0, d / 2)


# --- enqueue -------------------------------------------------------------------------------------


def provider_get_or_create(*, name: str) -> Provider:
    provider = Provider.objects.filter(name=name).first()
    if provider is not None:
        return provider
    candidate = Provider(name=name)
    candidate.full_clean()
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
    except IntegrityError:
        return Provider.objects.get(name=name)
    return candidate


def jobs_enqueue(
    *, provider: Provider, payloads: Sequence[dict[str, Any]], priority: int = 0,
    campaign: Campaign | None = None, run_at: dt.datetime | None = None,
) -> list[Job]:
    """Create queued jobs, ready at `run_at` (now by default)."""
    at = run_at or clock_now()
    jobs = [
        Job(provider=provider, campaign=campaign, payload=payload, priority=priority, run_at=at,
            max_attempts=provider.max_attempts, state=JobState.QUEUED)
        for payload in payloads
    ]
    with transaction.atomic():
        return Job.objects.bulk_create(jobs, batch_size=1000)


def campaign_enqueue(*, campaign: Campaign) -> int:
    """Turn a campaign into one job per (query, city); a campaign is enqueued once."""
    with transaction.atomic():
        claimed = Campaign.objects.filter(pk=campaign.pk, enqueued_at__isnull=True).update(
            enqueued_at=clock_now()
        )
        if not claimed:
            raise Conflict("This campaign was already enqueued.", code="campaign_already_enqueued")
        payloads = [
            {"query": query, "city": city, "campaign": campaign.pk}
            for query in campaign.query_list() for city in campaign.city_list()
        ]
        jobs_enqueue(provider=campaign.provider, payloads=payloads, priority=campaign.priority,
                     campaign=campaign)
        Campaign.objects.filter(pk=campaign.pk).update(jobs_created=len(payloads))
    return len(payloads)


# --- claim ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt_id: uuid.UUID
    attempt: int
    provider: str
    payload: dict[str, Any]
    lease_expires_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id, "attempt_id": str(self.attempt_id), "attempt": self.attempt,
            "provider": self.provider, "payload": self.payload,
            "lease_expires_at": self.lease_expires_at.isoformat(),
        }


def job_claim(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None = None) -> list[Claim]:
    """Lease up to `max_jobs` ready jobs to `worker`, creating one attempt per job."""
    if max_jobs < 1:
        return []
    now = clock_now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            claims = _claim_postgresql(worker=worker, max_jobs=max_jobs, providers=providers, now=now)
        else:
            claims = _claim_serialized(worker=worker, max_jobs=max_jobs, providers=providers, now=now)
        if claims:
            JobAttempt.objects.bulk_create(
                [
                    JobAttempt(id=claim.attempt_id, job_id=claim.job_id, number=claim.attempt,
                               worker=worker, claimed_at=now, lease_expires_at=claim.lease_expires_at)
                    for claim in claims
                ],
                batch_size=100,
            )
            # One batch for the whole claim: one stored INSERT and one group message on commit.
            events.publish_many("job.claimed", [
                {"job_id": c.job_id, "attempt_id": str(c.attempt_id), "attempt": c.attempt,
                 "provider": c.provider, "worker_id": worker.pk}
                for c in claims
            ])
    return claims


_CLAIM_SQL = """
WITH ready AS MATERIALIZED (
    SELECT j.id
      FROM queueing_job j
      JOIN queueing_provider p ON p.id = j.provider_id
     WHERE j.state = 'queued' AND j.run_at <= %(now)s AND p.enabled {provider_filter}
     ORDER BY j.priority DESC, j.run_at, j.id
     LIMIT %(limit)s
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE queueing_job j
   SET state = 'leased',
       attempts = j.attempts + 1,
       leased_by_id = %(worker_id)s,
       current_attempt_id = gen_random_uuid(),
       lease_expires_at = %(now)s + p.lease_seconds * interval '1 second',
       updated_at = %(now)s
  FROM ready, queueing_provider p
 WHERE j.id = ready.id AND p.id = j.provider_id
RETURNING j.id, j.current_attempt_id, j.attempts, p.name, j.payload, j.lease_expires_at
"""


def _claim_postgresql(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None,
                      now: dt.datetime) -> list[Claim]:
    # One statement: the materialized CTE picks and locks the head of the queue (skipping rows
    # other claimers hold), and the UPDATE leases exactly those rows. Eligibility is filtered
    # inside the CTE so an ineligible row never takes a LIMIT slot.
    params: dict[str, Any] = {"now": now, "limit": max_jobs, "worker_id": worker.pk}
    provider_filter = ""
    if providers:
        provider_filter = "AND p.name = ANY(%(providers)s)"
        params["providers"] = list(providers)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(provider_filter=provider_filter), params)
        rows = cursor.fetchall()
    claims = [
        Claim(job_id=row[0], attempt_id=row[1], attempt=row[2], provider=row[3],
              payload=row[4] if isinstance(row[4], dict) else json.loads(row[4]),
              lease_expires_at=row[5])
        for row in rows
    ]
    claims.sort(key=lambda claim: claim.job_id)
    return claims


def _claim_serialized(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None,
                      now: dt.datetime) -> list[Claim]:
    # SQLite has no row locks (select_for_update is silently dropped). Settings open every
    # transaction with BEGIN IMMEDIATE, which takes the database's write lock up front, so no
    # other claim can read the same queued rows until this one commits.
    ready = Job.objects.filter(state=JobState.QUEUED, run_at__lte=now, provider__enabled=True)
    if providers:
        ready = ready.filter(provider__name__in=list(providers))
    rows = list(
        ready.order_by("-priority", "run_at", "id")
        .values_list("id", "attempts", "payload", "provider__name", "provider__lease_seconds")[:max_jobs]
    )
    if not rows:
        return []
    claims = [
        Claim(job_id=job_id, attempt_id=uuid.uuid4(), attempt=attempts + 1, provider=provider_name,
              payload=payload, lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        for job_id, attempts, payload, provider_name, lease_seconds in rows
    ]
    Job.objects.filter(pk__in=[claim.job_id for claim in claims], state=JobState.QUEUED).update(
        state=JobState.LEASED,
        attempts=F("attempts") + 1,
        leased_by=worker,
        current_attempt_id=Case(*[When(pk=c.job_id, then=Value(c.attempt_id)) for c in claims]),
        lease_expires_at=Case(*[When(pk=c.job_id, then=Value(c.lease_expires_at)) for c in claims]),
        updated_at=now,
    )
    return claims


# --- extend / release ----------------------------------------------------------------------------


def job_lease_extend(*, worker: Worker, job_id: int, attempt_id: uuid.UUID,
                     seconds: int | None = None) -> dt.datetime:
    """Push the lease of the worker's current attempt forward (SQS ChangeMessageVisibility)."""
    now = clock_now()
    with transaction.atomic():
        job = _job_locked(job_id)
        attempt = _attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        seconds = seconds or job.provider.lease_seconds
        expires = now + dt.timedelta(seconds=seconds)
        _lease_renew(job=job, attempt=attempt, worker=worker, expires=expires, now=now)
    return expires


def _lease_renew(*, job: Job, attempt: JobAttempt, worker: Worker, expires: dt.datetime,
                 now: dt.datetime) -> None:
    # A job the reaper put back in the queue but nobody claimed yet is still this attempt's:
    # renewing takes it back rather than letting a second worker redo the work.
    Job.objects.filter(pk=job.pk, current_attempt_id=attempt.pk,
                       state__in=[JobState.LEASED, JobState.QUEUED]).update(
        state=JobState.LEASED, leased_by=worker, lease_expires_at=expires, updated_at=now
    )
    JobAttempt.objects.filter(pk=attempt.pk).update(
        lease_expires_at=expires,
        state=Case(When(state=AttemptState.LOST, then=Value(AttemptState.RUNNING)), default=F("state"),
                   output_field=CharField()),
    )


def jobs_release(*, worker: Worker, attempt_ids: Iterable[uuid.UUID] | None = None) -> int:
    """Give back this worker's leases; the jobs are ready at once and the attempt is not counted."""
    now = clock_now()
    with transaction.atomic():
        leased = Job.objects.filter(leased_by=worker, state=JobState.LEASED)
        if attempt_ids is not None:
            leased = leased.filter(current_attempt_id__in=list(attempt_ids))
        released_attempts = list(leased.select_for_update().values_list("current_attempt_id", flat=True))
        if not released_attempts:
            return 0
        count = Job.objects.filter(
            current_attempt_id__in=released_attempts, state=JobState.LEASED, leased_by=worker
        ).update(
            state=JobState.QUEUED, run_at=now, attempts=F("attempts") - 1, leased_by=None,
            lease_expires_at=None, updated_at=now,
        )
        JobAttempt.objects.filter(pk__in=released_attempts, state=AttemptState.RUNNING).update(
            state=AttemptState.RELEASED, finished_at=now
        )
    return count


# --- report --------------------------------------------------------------------------------------


class ReportOutcome:
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    ALL = (SUCCEEDED, FAILED, PARTIAL)


@dataclass(frozen=True)
class ReportResult:
    status: int
    body: dict[str, Any]


def report_request_hash(*, job_id: int, body: dict[str, Any]) -> str:
    """What makes two reports 'the same': the job and the parsed body, canonically encoded."""
    request = {"job": job_id, "body": body}
    # Sorted keys and no whitespace, so key order and spacing never make a retry look different.
    # orjson encodes a 500-lead report several times faster than the standard library; it refuses
    # only integers beyond 64 bits (possible inside a lead's `extra`), which the standard library
    # then encodes. The same body always takes the same branch, so its hash never changes.
    try:
        canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


def job_report(
    *, worker: Worker, job_id: int, attempt_id: uuid.UUID, outcome: str, leads: list[LeadInput],
    error: dict[str, Any] | None, idempotency_key: str, request_hash: str,
) -> ReportResult:
    """Take a worker's report of an attempt: ingest its leads and move the job, exactly once."""
    now = clock_now()
    with transaction.atomic():
        job = _job_locked(job_id)
        # The receipt is looked up under the job's lock, so a concurrent copy of this very report
        # that just committed is seen, and its answer is the one given.
        receipt = _receipt_find(worker=worker, key=idempotency_key, request_hash=request_hash)
        if receipt is not None:
            return receipt
        attempt = _attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        result = lead_batch_ingest(rows=leads, provider=job.provider.name, worker_id=worker.pk,
                                   job_id=job.pk, attempt_id=attempt.pk, received_at=now)
        attempt_counts = {
            "reports": F("reports") + 1,
            "leads_added": F("leads_added") + result.added,
            "leads_duplicates": F("leads_duplicates") + result.duplicates,
            "leads_invalid": F("leads_invalid") + result.invalid,
        }
        body: dict[str, Any] = {
            "added": result.added, "duplicates": result.duplicates, "invalid": result.invalid,
        }
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
    return ReportResult(status=200, body=body)


def _job_fail(*, job: Job, error: dict[str, Any] | None, now: dt.datetime, added: int, worker_id: str,
              attempt: int) -> str:
    """Retry with backoff, or move the job to the dead-letter queue with its reason."""
    retryable = True if error is None else bool(error.get("retryable", True))
    if not retryable:
        state, reason = JobState.DEAD, "non_retryable_error"
    elif job.attempts >= job.max_attempts:
        state, reason = JobState.DEAD, "max_attempts"
    else:
        state, reason = JobState.QUEUED, ""
    update: dict[str, Any] = {
        "state": state, "leased_by": None, "lease_expires_at": None, "last_error": error,
        "leads_added": F("leads_added") + added, "updated_at": now,
    }
    if state == JobState.DEAD:
        update.update(dead_reason=reason, finished_at=now)
    else:
        provider = job.provider
        delay = backoff_delay_s(attempt=job.attempts, base_s=provider.backoff_base_s,
                                cap_s=provider.backoff_cap_s)
        update["run_at"] = now + dt.timedelta(seconds=delay)
    Job.objects.filter(pk=job.pk).update(**update)
    who = {"job_id": job.pk, "attempt": attempt, "provider": job.provider.name, "worker_id": worker_id}
    if state == JobState.DEAD:
        events.publish("job.dead", **who, reason=reason)
    else:
        # The code is the worker's own string: capped, and never the free-text message.
        events.publish("job.failed", **who, error_code=str((error or {}).get("code") or "unknown")[:64],
                       retry_at=update["run_at"].isoformat())
    return state


def _receipt_find(*, worker: Worker, key: str, request_hash: str) -> ReportResult | None:
    receipt = ReportReceipt.objects.filter(worker_id=worker.pk, idempotency_key=key).first()
    if receipt is None:
        return None
    if receipt.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return ReportResult(status=200, body=receipt.response)


_MAX_BIGINT = 2**63 - 1


def _job_locked(job_id: int) -> Job:
    if not 0 < job_id <= _MAX_BIGINT:
        raise JobNotFound()
    # On PostgreSQL the row lock serializes reports and extensions of one job; on SQLite the
    # immediate transaction already serializes every writer.
    job = Job.objects.select_for_update(of=("self",)).select_related("provider").filter(pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


def _attempt_checked(*, job: Job, worker: Worker, attempt_id: uuid.UUID) -> JobAttempt:
    """The attempt rules of DESIGN.md section 4, in the order a worker can act on them."""
    attempt = JobAttempt.objects.filter(pk=attempt_id, job_id=job.pk).first()
    if attempt is None:
        raise AttemptNotFound()
    if attempt.worker_id != worker.pk:
        raise AttemptNotOwned()
    if job.current_attempt_id != attempt.pk:
        raise AttemptSuperseded()
    if job.state in FINISHED_STATES:
        raise JobFinished()
    # A failed or released attempt stays the job's latest until the next claim, but its outcome
    # is decided: a late extend or report must not re-lease or finish a job waiting out backoff.
    # A lost attempt (lease lapsed, reaper ran) may still report: the work was done.
    if attempt.state not in (AttemptState.RUNNING, AttemptState.LOST):
        raise AttemptSuperseded("This attempt already ended; wait for the next claim.")
    return attempt


# --- reaper and staff actions --------------------------------------------------------------------


def leases_reap(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Put jobs whose lease lapsed back in the queue, or in the DLQ when attempts are spent.

    The UPDATE re-checks `state='leased' AND lease_expires_at < now` itself, so a job that was
    reported between the scan and the write is never overwritten.
    """
    now = now or clock_now()
    with transaction.atomic():
        expired = list(
            Job.objects.filter(state=JobState.LEASED, lease_expires_at__lt=now)
            .order_by("lease_expires_at").values_list("pk", flat=True)[:limit]
        )
        if not expired:
            return 0
        lapsed = Q(pk__in=expired, state=JobState.LEASED, lease_expires_at__lt=now)
        # Locked so the rows read are exactly the rows the UPDATE changes (and the events say so).
        lapsed_rows = list(Job.objects.filter(lapsed).select_for_update(of=("self",)).values_list(
            "pk", "current_attempt_id", "attempts", "max_attempts", "provider__name", "leased_by_id"
        ))
        attempt_ids = [row[1] for row in lapsed_rows]
        error = {"code": "lease_expired", "message": "The worker's lease lapsed before a report.",
                 "retryable": True}
        spent = Q(attempts__gte=F("max_attempts"))
        reaped = Job.objects.filter(lapsed).update(
            state=Case(When(spent, then=Value(JobState.DEAD)), default=Value(JobState.QUEUED),
                       output_field=CharField()),
            dead_reason=Case(When(spent, then=Value("lease_expired")), default=Value(""),
                             output_field=CharField()),
            finished_at=Case(When(spent, then=Value(now)), default=Value(None),
                             output_field=DateTimeField()),
            run_at=now, leased_by=None, lease_expires_at=None, last_error=error, updated_at=now,
        )
        JobAttempt.objects.filter(pk__in=attempt_ids, state=AttemptState.RUNNING).update(
            state=AttemptState.LOST, finished_at=now, error=error
        )
        # The rows were read under the same conditions as the UPDATE, inside this transaction.
        dead, failed = [], []
        for job_id, _, attempts, max_attempts, provider, worker_id in lapsed_rows:
            who = {"job_id": job_id, "attempt": attempts, "provider": provider, "worker_id": worker_id or ""}
            if attempts >= max_attempts:
                dead.append({**who, "reason": "lease_expired"})
            else:
                failed.append({**who, "error_code": "lease_expired", "retry_at": now.isoformat()})
        events.publish_many("job.dead", dead)
        events.publish_many("job.failed", failed)
    return reaped


def jobs_cancel(*, job_ids: Iterable[int]) -> int:
    """Cancel jobs that are not finished; a leased job's late report then gets 409 job_finished."""
    now = clock_now()
    with transaction.atomic():
        ids = list(job_ids)
        attempts = list(Job.objects.filter(pk__in=ids, state=JobState.LEASED)
                        .values_list("current_attempt_id", flat=True))
        count = Job.objects.filter(pk__in=ids, state__in=[JobState.QUEUED, JobState.LEASED]).update(
            state=JobState.CANCELLED, finished_at=now, leased_by=None, lease_expires_at=None,
            updated_at=now,
        )
        JobAttempt.objects.filter(pk__in=attempts, state=AttemptState.RUNNING).update(
            state=AttemptState.CANCELLED, finished_at=now
        )
    return count


def jobs_requeue(*, job_ids: Iterable[int], reset_attempts: bool = True, priority: int | None = None) -> int:
    """Send finished (dead, cancelled, succeeded) jobs back to the queue, ready now."""
    now = clock_now()
    update: dict[str, Any] = {
        "state": JobState.QUEUED, "run_at": now, "finished_at": None, "dead_reason": "",
        "leased_by": None, "lease_expires_at": None, "updated_at": now,
    }
    if reset_attempts:
        update["attempts"] = 0
    if priority is not None:
        update["priority"] = priority
    with transaction.atomic():
        return Job.objects.filter(pk__in=list(job_ids), state__in=FINISHED_STATES).update(**update)


def receipts_purge(*, older_than: dt.datetime) -> int:
    deleted, _ = ReportReceipt.objects.filter(created_at__lt=older_than).delete()
    return deleted
