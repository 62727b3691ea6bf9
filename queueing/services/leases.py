"""Leases: extend, release, and the reaper of lapsed leases."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Case, CharField, DateTimeField, F, Q, Value, When
from django.utils.timezone import now as clock_now

from core import events
from queueing.models import (
    FINISHED_STATES,
    AttemptState,
    Job,
    JobAttempt,
    JobState,
)
from queueing.services.errors import (
    AttemptNotFound,
    AttemptNotOwned,
    AttemptSuperseded,
    JobFinished,
    JobNotFound,
)
from queueing.wakeup import jobs_ready_announce
from workers_mgmt.models import Worker


def job_lease_extend(*, worker: Worker, job_id: int, attempt_id: uuid.UUID,
                     seconds: int | None = None) -> dt.datetime:
    """Push the lease of the worker's current attempt forward (SQS ChangeMessageVisibility)."""
    now = clock_now()
    with transaction.atomic():
        job = job_locked(job_id)
        attempt = attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
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
        locked = leased.select_for_update().values_list("current_attempt_id", flat=True)
        released_attempts = [pk for pk in locked if pk is not None]
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
        if count:
            jobs_ready_announce()
    return count


# The largest id a job (a bigint) can have: a larger one names no job, and is not sent to the database.
MAX_JOB_ID = 2**63 - 1


def job_locked(job_id: int) -> Job:
    """The job `job_id` with its provider, locked for this transaction; `JobNotFound` when there is none."""
    if not 0 < job_id <= MAX_JOB_ID:
        raise JobNotFound()
    # On PostgreSQL the row lock serializes reports and extensions of one job; on SQLite the
    # immediate transaction already serializes every writer.
    job = Job.objects.select_for_update(of=("self",)).select_related("provider").filter(pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


def attempt_checked(*, job: Job, worker: Worker, attempt_id: uuid.UUID) -> JobAttempt:
    """The attempt rules of docs/API.md, on the attempt `attempt_id` of the locked `job`."""
    return attempt_check(job=job, worker=worker,
                          attempt=JobAttempt.objects.filter(pk=attempt_id, job_id=job.pk).first())


def attempt_check(*, job: Job, worker: Worker, attempt: JobAttempt | None) -> JobAttempt:
    """The attempt rules of docs/API.md, in the order a worker can act on them, on an attempt row
    already read (None: there is no such attempt)."""
    if attempt is None or attempt.job_id != job.pk:
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


def leases_reap(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Put jobs whose lease lapsed back in the queue, or in the DLQ when attempts are spent.

    The UPDATE re-checks `state='leased' AND lease_expires_at < now` itself, so a job that was
    reported between the scan and the write is never overwritten.
    """
    now = now or clock_now()
    with events.atomic():
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
        JobAttempt.objects.filter(pk__in=[pk for pk in attempt_ids if pk], state=AttemptState.RUNNING).update(
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
