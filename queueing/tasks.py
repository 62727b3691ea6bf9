"""django-q2 entry points: thin wrappers that call services (scheduled by a data migration)."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils.timezone import now as clock_now

from queueing.services import (
    breaker_outcomes_purge,
    campaign_schedules_run,
    finished_jobs_prune,
    job_state_counts_compact,
    job_state_counts_reconcile,
    leases_reap,
    receipts_purge,
)

logger = logging.getLogger(__name__)


def reap_expired_leases() -> int:
    reaped = leases_reap()
    if reaped:
        logger.info("lease reaper requeued or buried %d jobs", reaped)
    return reaped


def purge_report_receipts() -> int:
    cutoff = clock_now() - dt.timedelta(hours=settings.LEADOPS_IDEMPOTENCY_TTL_H)
    return receipts_purge(older_than=cutoff)


def purge_breaker_outcomes() -> int:
    return breaker_outcomes_purge()


def prune_finished_jobs() -> int:
    """Delete succeeded and cancelled jobs older than LEADOPS_JOB_RETENTION_DAYS (0 keeps them all).

    Never sooner than the idempotency window: a worker retrying a report of a pruned job would get
    404 instead of the answer it missed.
    """
    days = settings.LEADOPS_JOB_RETENTION_DAYS
    if days <= 0:
        return 0
    keep = max(dt.timedelta(days=days), dt.timedelta(hours=settings.LEADOPS_IDEMPOTENCY_TTL_H))
    pruned = finished_jobs_prune(older_than=clock_now() - keep)
    if pruned:
        logger.info("pruned %d finished jobs older than %s", pruned, keep)
    return pruned


def run_campaign_schedules() -> int:
    """Enqueue (or skip, with a note) every recurring campaign that is due; once a minute."""
    return len(campaign_schedules_run())


def compact_job_counts() -> int:
    """Fold the job-count deltas of the last minutes into one row per provider and state."""
    return job_state_counts_compact()


def reconcile_job_counts() -> int:
    """Recount jobs per provider and state from the rows (a safety net; the triggers keep them)."""
    return len(job_state_counts_reconcile())
