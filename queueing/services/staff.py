"""Staff actions on jobs: cancel, requeue, and the dead-letter queue."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.utils.timezone import now as clock_now

from queueing.models import (
    FINISHED_STATES,
    AttemptState,
    Job,
    JobAttempt,
    JobState,
)


def jobs_cancel(*, job_ids: Iterable[int]) -> int:
    """Cancel jobs that are not finished; a leased job's late report then gets 409 job_finished.

    One UPDATE ... RETURNING names the attempts of exactly the rows it cancelled: a job claimed
    between a separate read and the write would otherwise be cancelled with its new attempt left
    `running`.
    """
    now = clock_now()
    ids = [int(job_id) for job_id in job_ids]
    if not ids:
        return 0
    table = Job._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    stamp = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, finished_at = %s, leased_by_id = NULL, "
            f"lease_expires_at = NULL, updated_at = %s "
            f"WHERE id IN ({marks}) AND state IN (%s, %s) RETURNING id, current_attempt_id",
            [JobState.CANCELLED.value, stamp, stamp, *ids, JobState.QUEUED.value, JobState.LEASED.value],
        )
        rows = cursor.fetchall()
        attempts = [attempt_id for _, attempt_id in rows if attempt_id is not None]
        JobAttempt.objects.filter(pk__in=attempts, state=AttemptState.RUNNING).update(
            state=AttemptState.CANCELLED, finished_at=now
        )
    return len(rows)


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


def dead_jobs_requeue(*, job_ids: Iterable[int], priority: int | None = None) -> int:
    """DLQ: send dead jobs back to the queue with their attempts reset (optionally a new priority)."""
    now = clock_now()
    update: dict[str, Any] = {
        "state": JobState.QUEUED, "run_at": now, "finished_at": None, "dead_reason": "", "attempts": 0,
        "leased_by": None, "lease_expires_at": None, "updated_at": now,
    }
    if priority is not None:
        update["priority"] = priority
    with transaction.atomic():
        return Job.objects.filter(pk__in=list(job_ids), state=JobState.DEAD).update(**update)


def dead_jobs_delete(*, job_ids: Iterable[int]) -> int:
    """DLQ: delete dead jobs for good (their attempts and receipts go with them); return how many jobs."""
    with transaction.atomic():
        _, per_model = Job.objects.filter(pk__in=list(job_ids), state=JobState.DEAD).delete()
    # delete() counts the cascaded attempts and receipts too; the caller asked about jobs.
    return per_model.get(Job._meta.label, 0)


def _dead_ids(provider: str | None, chunk: int = 1000) -> Iterable[list[int]]:
    dead = Job.objects.filter(state=JobState.DEAD)
    if provider:
        dead = dead.filter(provider__name=provider)
    last = 0
    while True:
        ids = list(dead.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return
        yield ids
        last = ids[-1]


def dlq_requeue(*, provider: str | None = None) -> int:
    """Requeue every dead job (of one provider), a chunk per transaction."""
    return sum(dead_jobs_requeue(job_ids=ids) for ids in _dead_ids(provider))


def dlq_purge(*, provider: str | None = None) -> int:
    """Delete every dead job (of one provider), a chunk per transaction."""
    total = 0
    for ids in _dead_ids(provider):
        with transaction.atomic():
            total += Job.objects.filter(pk__in=ids, state=JobState.DEAD).count()
            Job.objects.filter(pk__in=ids, state=JobState.DEAD).delete()
    return total
