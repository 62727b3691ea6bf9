"""Housekeeping: pruning finished jobs and old idempotency receipts."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from queueing.models import (
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
