"""Housekeeping: pruning finished jobs and old idempotency receipts."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from core.purge import batched_delete, delete_or_count, keyset_batches
from queueing.models import (
    BreakerTransition,
    Job,
    JobState,
    ReportReceipt,
)

PRUNABLE_STATES = (JobState.SUCCEEDED, JobState.CANCELLED)


def finished_jobs_prune(*, older_than: dt.datetime, chunk: int = 1000, most: int = 100_000,
                        dry_run: bool = False) -> int:
    """Delete succeeded and cancelled jobs finished before `older_than`, with attempts and receipts.

    Like Oban's pruner: a finished job has done its work (its leads, counters and telemetry live
    elsewhere), and a queue table that only grows makes every aggregate over it slower. Dead jobs
    stay: the dead-letter queue waits for a person (`dlq purge`). One chunk per transaction and at
    most `most` jobs per run, so the first run after a long time never holds locks for long. With
    `dry_run`, the same chunks are counted and nothing is deleted.
    """
    finished = Job.objects.filter(state__in=PRUNABLE_STATES, finished_at__lt=older_than)
    pruned = 0
    for ids in keyset_batches(queryset=finished, batch_size=chunk, order="finished_at", most=most):
        with transaction.atomic():
            pruned += delete_or_count(queryset=finished.filter(pk__in=ids), dry_run=dry_run)
    return pruned


def receipts_purge(*, older_than: dt.datetime, dry_run: bool = False) -> int:
    return delete_or_count(queryset=ReportReceipt.objects.filter(created_at__lt=older_than), dry_run=dry_run)


def dead_jobs_purge(*, older_than: dt.datetime, batch_size: int = 1000, dry_run: bool = False) -> int:
    """Delete dead jobs (the DLQ) that died before `older_than`, with their attempts and receipts.

    A dead job waits for a person; one nobody requeued within the retention period is not coming
    back, and its payload and attempt errors are kept no longer than the policy says.
    """
    dead = Job.objects.filter(state=JobState.DEAD, finished_at__lt=older_than)
    return batched_delete(queryset=dead, batch_size=batch_size, dry_run=dry_run)


def breaker_transitions_purge(*, older_than: dt.datetime, batch_size: int = 5000,
                              dry_run: bool = False) -> int:
    """Delete breaker audit rows (transitions) older than `older_than`."""
    return batched_delete(queryset=BreakerTransition.objects.filter(at__lt=older_than),
                          batch_size=batch_size, raw=True, dry_run=dry_run)
