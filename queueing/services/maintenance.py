"""Housekeeping: pruning finished jobs and old idempotency receipts."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from core.purge import batched_delete
from queueing.models import (
    BreakerTransition,
    Job,
    JobState,
    ReportReceipt,
)

PRUNABLE_STATES = (JobState.SUCCEEDED, JobState.CANCELLED)


def finished_jobs_prune(*, older_than: dt.datetime, chunk: int = 1000, most: int = 100_000) -> int:
    """Delete succeeded and cancelled jobs finished before `older_than`, with attempts and receipts.

    Like Oban's pruner: a finished job has done its work (its leads, counters and telemetry live
    elsewhere), and a queue table that only grows makes every aggregate over it slower. Dead jobs
    stay: the dead-letter queue waits for a person (`dlq purge`). One chunk per transaction and at
    most `most` jobs per run, so the first run after a long time never holds locks for long.
    """
    pruned = 0
    while pruned < most:
        ids = list(
            Job.objects.filter(state__in=PRUNABLE_STATES, finished_at__lt=older_than)
            .order_by("finished_at").values_list("id", flat=True)[:min(chunk, most - pruned)]
        )
        if not ids:
            break
        with transaction.atomic():
            _, per_model = Job.objects.filter(pk__in=ids, state__in=PRUNABLE_STATES,
                                              finished_at__lt=older_than).delete()
        pruned += per_model.get(Job._meta.label, 0)
    return pruned


def receipts_purge(*, older_than: dt.datetime) -> int:
    deleted, _ = ReportReceipt.objects.filter(created_at__lt=older_than).delete()
    return deleted


def dead_jobs_purge(*, older_than: dt.datetime, batch_size: int = 1000) -> int:
    """Delete dead jobs (the DLQ) that died before `older_than`, with their attempts and receipts.

    A dead job waits for a person; one nobody requeued within the retention period is not coming
    back, and its payload and attempt errors are kept no longer than the policy says.
    """
    dead = Job.objects.filter(state=JobState.DEAD, finished_at__lt=older_than)
    return batched_delete(queryset=dead, batch_size=batch_size)


def breaker_transitions_purge(*, older_than: dt.datetime, batch_size: int = 5000) -> int:
    """Delete breaker audit rows (transitions) older than `older_than`."""
    return batched_delete(queryset=BreakerTransition.objects.filter(at__lt=older_than),
                          batch_size=batch_size, raw=True)
