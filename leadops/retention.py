"""The retention policy and `purge_retention`: every data class, its days, and the purge that applies them.

The project package composes the apps' own purges (each app deletes only its own tables); this
module decides the cut of each class from the policy and writes one audit row per run with the
counts per class (docs/PRIVACY.md, "Retention"; docs/RUNBOOK.md, "Retention and data-subject
requests").
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from alerts.services import alerts_history_purge
from core.audit import Actor, staff_action_record, staff_actions_purge
from core.ratelimit import ratelimit_states_purge
from ingestion.services import counters_purge, fingerprints_purge, leads_purge
from leadops.models import DataClass, RetentionPolicy
from leadops.services import monitor_events_purge
from queueing.services import (
    breaker_transitions_purge,
    dead_jobs_purge,
    evidence_purge,
    finished_jobs_prune,
    log_tails_purge,
    receipts_purge,
)
from workers_mgmt.nonces import nonce_purge
from workers_mgmt.purges import auth_failures_purge, credential_events_purge

BATCH = 5000
# Leads are wide rows with several indexes: smaller batches keep each transaction's WAL and lock time
# short while workers pull (bench/purge_under_load.py: p99 pull latency 529 ms at 5,000, 148 ms at
# 1,000 on a loaded two-core machine, at a higher purge rate).
LEAD_BATCH = 1000


def default_days() -> dict[str, int | None]:
    """The default days of every class (read at call time: two follow settings)."""
    return {
        DataClass.LEADS: 365,
        DataClass.FINGERPRINTS: 2,
        DataClass.COUNTERS: 730,
        DataClass.ATTEMPTS: settings.LEADOPS_JOB_RETENTION_DAYS or None,
        DataClass.RECEIPTS: 2,
        DataClass.DEAD_JOBS: 30,
        DataClass.BREAKER_AUDIT: 90,
        DataClass.NONCES: 1,
        DataClass.RATE_LIMIT_STATES: 0,
        DataClass.AUTH_FAILURES: settings.LEADOPS_AUTH_FAILURE_RETENTION_DAYS,
        DataClass.CREDENTIAL_AUDIT: 365,
        DataClass.MONITOR_EVENTS: 7,
        DataClass.STAFF_AUDIT: 730,
        DataClass.ALERT_HISTORY: 30,
        DataClass.EVIDENCE: 14,
    }


def retention_policies_ensure(**kwargs: Any) -> None:
    """Create the missing policy rows with their defaults (after migrate); staff edits are kept."""
    if RetentionPolicy._meta.db_table not in _tables(kwargs.get("using", "default")):
        return
    existing = set(RetentionPolicy.objects.values_list("data_class", flat=True))
    RetentionPolicy.objects.bulk_create([
        RetentionPolicy(data_class=name, days=days) for name, days in default_days().items()
        if name not in existing
    ])


def _tables(using: str) -> list[str]:
    from django.db import connections

    return connections[using].introspection.table_names()


def retention_days() -> dict[str, int | None]:
    """The days of every class: the policy row's, or the default when the row is missing."""
    days = default_days()
    days.update(dict(RetentionPolicy.objects.values_list("data_class", "days")))
    return days


def dead_job_retention_days() -> int | None:
    """The days a dead job stays in the DLQ before `purge_retention` deletes it (None: until staff act)."""
    return retention_days()[DataClass.DEAD_JOBS]


# One purge per class, called with the current time, the policy's days and whether it is a dry run.
# A dry run walks the same purge: the same querysets in the same batches, counting at the one place
# where the real run deletes (core/purge.py), so its counts are the ones a real run would report.
Purge = Callable[[dt.datetime, int, bool], int]


def _local_day(now: dt.datetime, days: int) -> dt.date:
    return timezone.localtime(now).date() - dt.timedelta(days=days)


def _ago(now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(days=days)


def _at_least(now: dt.datetime, days: int, *, hours: float) -> dt.datetime:
    # Receipts, finished jobs and nonces are needed for their protocol window whatever the policy.
    return now - max(dt.timedelta(days=days), dt.timedelta(hours=hours))


def _fingerprints_purge(now: dt.datetime, days: int, dry_run: bool) -> int:
    lead_days = retention_days()[DataClass.LEADS]
    # Cross-day fingerprints live as long as their leads; with leads kept forever, so are they.
    all_before = dt.datetime.min.replace(tzinfo=dt.UTC) if lead_days is None else _ago(now, lead_days)
    return fingerprints_purge(day_scope_before=_local_day(now, days), all_scope_older_than=all_before,
                              batch_size=BATCH, dry_run=dry_run)


def _receipt_cut(now: dt.datetime, days: int) -> dt.datetime:
    return _at_least(now, days, hours=settings.LEADOPS_IDEMPOTENCY_TTL_H)


def _nonce_cut(now: dt.datetime, days: int) -> dt.datetime:
    return _at_least(now, days, hours=settings.LEADOPS_NONCE_TTL_S / 3600)


# In this order. A class whose rows another class's delete takes along (a pruned job's receipts and
# attempts) runs before that class, so each class counts only rows that are still there in a real
# run, and a dry run, which deletes nothing, counts the same.
CLASSES: dict[str, Purge] = {
    DataClass.LEADS: lambda now, d, dry: leads_purge(older_than=_local_day(now, d), batch_size=LEAD_BATCH,
                                                      dry_run=dry),
    DataClass.FINGERPRINTS: _fingerprints_purge,
    DataClass.COUNTERS: lambda now, d, dry: counters_purge(older_than=_ago(now, d), batch_size=BATCH,
                                                            dry_run=dry),
    DataClass.RECEIPTS: lambda now, d, dry: receipts_purge(older_than=_receipt_cut(now, d), dry_run=dry),
    # Screenshots and log tails: what a worker saw and logged of a failed attempt.
    DataClass.EVIDENCE: lambda now, d, dry: (evidence_purge(older_than=_ago(now, d), dry_run=dry)
                                             + log_tails_purge(older_than=_ago(now, d), dry_run=dry)),
    DataClass.ATTEMPTS: lambda now, d, dry: finished_jobs_prune(older_than=_receipt_cut(now, d), chunk=1000,
                                                                most=10**9, dry_run=dry),
    DataClass.DEAD_JOBS: lambda now, d, dry: dead_jobs_purge(older_than=_ago(now, d), dry_run=dry),
    DataClass.BREAKER_AUDIT: lambda now, d, dry: breaker_transitions_purge(older_than=_ago(now, d),
                                                                           batch_size=BATCH, dry_run=dry),
    DataClass.NONCES: lambda now, d, dry: nonce_purge(older_than=_nonce_cut(now, d), dry_run=dry),
    DataClass.RATE_LIMIT_STATES: lambda now, d, dry: ratelimit_states_purge(now=_ago(now, d).timestamp(),
                                                                            dry_run=dry),
    DataClass.AUTH_FAILURES: lambda now, d, dry: auth_failures_purge(older_than=_ago(now, d), dry_run=dry),
    DataClass.CREDENTIAL_AUDIT: lambda now, d, dry: credential_events_purge(older_than=_ago(now, d),
                                                                            batch_size=BATCH, dry_run=dry),
    DataClass.MONITOR_EVENTS: lambda now, d, dry: monitor_events_purge(older_than=_ago(now, d),
                                                                       batch_size=BATCH, dry_run=dry),
    DataClass.STAFF_AUDIT: lambda now, d, dry: staff_actions_purge(older_than=_ago(now, d), batch_size=BATCH,
                                                                   dry_run=dry),
    DataClass.ALERT_HISTORY: lambda now, d, dry: sum(
        alerts_history_purge(older_than=_ago(now, d), dry_run=dry).values()),
}

Progress = Callable[[str, int, int], None]


def retention_class_purge(*, data_class: str, now: dt.datetime | None = None) -> int:
    """Purge one class by its policy, without an audit row (the frequent schedules of a few classes)."""
    days = retention_days()[data_class]
    if days is None:
        return 0
    return CLASSES[data_class](now or timezone.now(), days, False)


def retention_purge(*, actor: Actor, dry_run: bool = False, now: dt.datetime | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Apply the retention policy to every class; return (and audit, once) the counts per class.

    With `dry_run` the same purges walk the same batches and delete nothing: the counts are what a
    run now would delete. Classes kept
    forever are reported as null. Each class deletes in batches of short transactions; the audit
    row is written at the end, so it says what was actually done.
    """
    now = now or timezone.now()
    days = retention_days()
    counts: dict[str, int | None] = {}
    started = time.monotonic()
    for index, (name, purge) in enumerate(CLASSES.items()):
        keep = days[name]
        counts[name] = None if keep is None else purge(now, keep, dry_run)
        if progress is not None:
            progress(name, index + 1, len(CLASSES))
    staff_action_record(
        actor=actor, action="retention.purge_dry_run" if dry_run else "retention.purge",
        object_type="leadops.retentionpolicy", object_count=sum(c or 0 for c in counts.values()),
        detail={"dry_run": dry_run, "counts": counts, "days": {k: days[k] for k in CLASSES},
                "seconds": round(time.monotonic() - started, 3)},
    )
    return {"dry_run": dry_run, "counts": counts}
