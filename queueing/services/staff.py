"""Staff actions on jobs: cancel, requeue, and the dead-letter queue.

Each is one transaction that changes the jobs, writes its `StaffAction` row when an actor asked for
it, and publishes `jobs.moved` events on commit, so the monitor's counters follow without a resync.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.utils.timezone import now as clock_now

from core import events
from core.audit import Actor, staff_action_record
from queueing.models import (
    FINISHED_STATES,
    AttemptState,
    Job,
    JobAttempt,
    JobState,
    Provider,
)

JOB_TYPE = "queueing.job"


def jobs_moved_publish(*, action: str, moved: Iterable[tuple[str, str]], to_state: str) -> None:
    """Publish one `jobs.moved` per (provider, from_state) of the rows an action changed."""
    counts = Counter(moved)
    events.publish_many("jobs.moved", [
        {"action": action, "provider": provider, "from_state": from_state, "to_state": to_state,
         "count": count}
        for (provider, from_state), count in sorted(counts.items())
    ])


def _audit(*, actor: Actor | None, action: str, ids: Sequence[int], **detail: Any) -> None:
    if actor is not None and ids:
        staff_action_record(actor=actor, action=action, object_type=JOB_TYPE, object_ids=ids,
                            detail=detail)


def jobs_cancel(*, job_ids: Iterable[int], actor: Actor | None = None) -> int:
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
    with events.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s, finished_at = %s, leased_by_id = NULL, "
                f"lease_expires_at = NULL, updated_at = %s "
                f"WHERE id IN ({marks}) AND state IN (%s, %s) RETURNING id, current_attempt_id, provider_id",
                [JobState.CANCELLED.value, stamp, stamp, *ids, JobState.QUEUED.value, JobState.LEASED.value],
            )
            rows = cursor.fetchall()
        if not rows:
            return 0
        # A cancelled job was leased exactly when its current attempt was still running.
        running = JobAttempt.objects.filter(pk__in=[row[1] for row in rows if row[1] is not None],
                                            state=AttemptState.RUNNING)
        leased = set(running.values_list("job_id", flat=True))
        running.update(state=AttemptState.CANCELLED, finished_at=now)
        names = dict(Provider.objects.filter(pk__in={row[2] for row in rows}).values_list("pk", "name"))
        jobs_moved_publish(action="jobs.cancel", to_state=JobState.CANCELLED, moved=[
            (names[provider_id], JobState.LEASED if job_id in leased else JobState.QUEUED)
            for job_id, _, provider_id in rows
        ])
        _audit(actor=actor, action="jobs.cancel", ids=[row[0] for row in rows], leased=len(leased))
    return len(rows)


def jobs_requeue(
    *, job_ids: Iterable[int], reset_attempts: bool = True, priority: int | None = None,
    states: Sequence[str] = FINISHED_STATES, actor: Actor | None = None, action: str = "jobs.requeue",
) -> int:
    """Send finished jobs (dead, cancelled, succeeded; or only `states`) back to the queue, ready now."""
    now = clock_now()
    update: dict[str, Any] = {
        "state": JobState.QUEUED, "run_at": now, "finished_at": None, "dead_reason": "",
        "leased_by": None, "lease_expires_at": None, "updated_at": now,
    }
    if reset_attempts:
        update["attempts"] = 0
    if priority is not None:
        update["priority"] = priority
    with events.atomic():
        # Locked, so the rows read are exactly the rows the UPDATE changes (and the events say so).
        rows = list(Job.objects.select_for_update(of=("self",))
                    .filter(pk__in=list(job_ids), state__in=list(states))
                    .values_list("pk", "state", "provider__name"))
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        done = Job.objects.filter(pk__in=ids, state__in=list(states)).update(**update)
        jobs_moved_publish(action=action, to_state=JobState.QUEUED,
                           moved=[(provider, state) for _, state, provider in rows])
        _audit(actor=actor, action=action, ids=ids, priority=priority, reset_attempts=reset_attempts)
    return done


def dead_jobs_requeue(*, job_ids: Iterable[int], priority: int | None = None,
                      actor: Actor | None = None) -> int:
    """DLQ: send dead jobs back to the queue with their attempts reset (optionally a new priority)."""
    return jobs_requeue(job_ids=job_ids, priority=priority, states=(JobState.DEAD,), actor=actor,
                        action="dlq.requeue")


def dead_jobs_delete(*, job_ids: Iterable[int], actor: Actor | None = None) -> int:
    """DLQ: delete dead jobs for good (their attempts and receipts go with them); return how many jobs."""
    with events.atomic():
        rows = list(Job.objects.select_for_update(of=("self",))
                    .filter(pk__in=list(job_ids), state=JobState.DEAD).values_list("pk", "provider__name"))
        if not rows:
            return 0
        ids = [row[0] for row in rows]
        _, per_model = Job.objects.filter(pk__in=ids, state=JobState.DEAD).delete()
        jobs_moved_publish(action="dlq.purge", to_state="",
                           moved=[(provider, JobState.DEAD) for _, provider in rows])
        _audit(actor=actor, action="dlq.purge", ids=ids)
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


def dlq_requeue(*, provider: str | None = None, actor: Actor | None = None) -> int:
    """Requeue every dead job (of one provider), a chunk per transaction (each with its audit row)."""
    return sum(dead_jobs_requeue(job_ids=ids, actor=actor) for ids in _dead_ids(provider))


def dlq_purge(*, provider: str | None = None, actor: Actor | None = None) -> int:
    """Delete every dead job (of one provider), a chunk per transaction (each with its audit row)."""
    return sum(dead_jobs_delete(job_ids=ids, actor=actor) for ids in _dead_ids(provider))
