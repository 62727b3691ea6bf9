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
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from alerts.models import Alert, AlertState, Notification, NotificationStatus, Silence
from alerts.services import alerts_history_purge
from core.audit import Actor, staff_action_record, staff_actions_purge
from core.models import RateLimitState, StaffAction
from core.ratelimit import ratelimit_states_purge
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.services import counters_purge, fingerprints_purge, leads_purge
from leadops.models import DataClass, MonitorEvent, RetentionPolicy
from leadops.services import monitor_events_purge
from queueing.models import AttemptEvidence, BreakerTransition, Job, JobAttempt, JobState, ReportReceipt
from queueing.services import (
    PRUNABLE_STATES,
    breaker_transitions_purge,
    dead_jobs_purge,
    evidence_purge,
    finished_jobs_prune,
    log_tails_purge,
    receipts_purge,
)
from workers_mgmt.models import CredentialEvent, CredentialEventKind, RequestNonce
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


@dataclass(frozen=True)
class _Class:
    """One class: what its expired rows are (for --dry-run), and how they are purged."""

    count: Callable[[dt.datetime, int], int]
    purge: Callable[[dt.datetime, int], int]


def _local_day(now: dt.datetime, days: int) -> dt.date:
    return timezone.localtime(now).date() - dt.timedelta(days=days)


def _ago(now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(days=days)


def _at_least(now: dt.datetime, days: int, *, hours: float) -> dt.datetime:
    # Receipts, finished jobs and nonces are needed for their protocol window whatever the policy.
    return now - max(dt.timedelta(days=days), dt.timedelta(hours=hours))


def _n(queryset: QuerySet[Any]) -> int:
    return queryset.count()


def _leads_days() -> int | None:
    return retention_days()[DataClass.LEADS]


def _fingerprints(now: dt.datetime, days: int) -> tuple[QuerySet[Any], QuerySet[Any], dt.date, dt.datetime]:
    day_before = _local_day(now, days)
    lead_days = _leads_days()
    # Cross-day fingerprints live as long as their leads; with leads kept forever, so are they.
    all_before = dt.datetime.min.replace(tzinfo=dt.UTC) if lead_days is None else _ago(now, lead_days)
    per_day = LeadFingerprint.objects.filter(scope__lt=day_before.isoformat()).exclude(scope="all")
    cross = LeadFingerprint.objects.filter(scope="all", created_at__lt=all_before)
    return per_day, cross, day_before, all_before


def _fingerprints_count(now: dt.datetime, days: int) -> int:
    per_day, cross, _, _ = _fingerprints(now, days)
    return per_day.count() + cross.count()


def _fingerprints_purge(now: dt.datetime, days: int) -> int:
    _, _, day_before, all_before = _fingerprints(now, days)
    return fingerprints_purge(day_scope_before=day_before, all_scope_older_than=all_before, batch_size=BATCH)


def _alert_history_count(now: dt.datetime, days: int) -> int:
    cut = _ago(now, days)
    return (Notification.objects.filter(status__in=[NotificationStatus.DELIVERED, NotificationStatus.FAILED],
                                        created_at__lt=cut).count()
            + Alert.objects.filter(state=AlertState.RESOLVED, ends_at__lt=cut).count()
            + Silence.objects.filter(ends_at__lt=cut).count())


def _receipt_cut(now: dt.datetime, days: int) -> dt.datetime:
    return _at_least(now, days, hours=settings.LEADOPS_IDEMPOTENCY_TTL_H)


def _nonce_cut(now: dt.datetime, days: int) -> dt.datetime:
    return _at_least(now, days, hours=settings.LEADOPS_NONCE_TTL_S / 3600)


CLASSES: dict[str, _Class] = {
    DataClass.LEADS: _Class(
        count=lambda now, d: _n(Lead.objects.filter(local_day__lt=_local_day(now, d))),
        purge=lambda now, d: leads_purge(older_than=_local_day(now, d), batch_size=LEAD_BATCH),
    ),
    DataClass.FINGERPRINTS: _Class(count=_fingerprints_count, purge=_fingerprints_purge),
    DataClass.COUNTERS: _Class(
        count=lambda now, d: _n(IngestCounter.objects.filter(hour__lt=_ago(now, d))),
        purge=lambda now, d: counters_purge(older_than=_ago(now, d), batch_size=BATCH),
    ),
    DataClass.ATTEMPTS: _Class(
        count=lambda now, d: _n(Job.objects.filter(state__in=PRUNABLE_STATES,
                                                   finished_at__lt=_receipt_cut(now, d))),
        purge=lambda now, d: finished_jobs_prune(older_than=_receipt_cut(now, d), chunk=1000, most=10**9),
    ),
    DataClass.RECEIPTS: _Class(
        count=lambda now, d: _n(ReportReceipt.objects.filter(created_at__lt=_receipt_cut(now, d))),
        purge=lambda now, d: receipts_purge(older_than=_receipt_cut(now, d)),
    ),
    DataClass.DEAD_JOBS: _Class(
        count=lambda now, d: _n(Job.objects.filter(state=JobState.DEAD, finished_at__lt=_ago(now, d))),
        purge=lambda now, d: dead_jobs_purge(older_than=_ago(now, d)),
    ),
    DataClass.BREAKER_AUDIT: _Class(
        count=lambda now, d: _n(BreakerTransition.objects.filter(at__lt=_ago(now, d))),
        purge=lambda now, d: breaker_transitions_purge(older_than=_ago(now, d), batch_size=BATCH),
    ),
    DataClass.NONCES: _Class(
        count=lambda now, d: _n(RequestNonce.objects.filter(seen_at__lt=_nonce_cut(now, d))),
        purge=lambda now, d: nonce_purge(older_than=_nonce_cut(now, d)),
    ),
    DataClass.RATE_LIMIT_STATES: _Class(
        count=lambda now, d: _n(RateLimitState.objects.filter(tat__lt=_ago(now, d).timestamp())),
        purge=lambda now, d: ratelimit_states_purge(now=_ago(now, d).timestamp()),
    ),
    DataClass.AUTH_FAILURES: _Class(
        count=lambda now, d: _n(CredentialEvent.objects.filter(kind=CredentialEventKind.AUTH_FAILED,
                                                               created_at__lt=_ago(now, d))),
        purge=lambda now, d: auth_failures_purge(older_than=_ago(now, d)),
    ),
    DataClass.CREDENTIAL_AUDIT: _Class(
        count=lambda now, d: _n(CredentialEvent.objects.filter(created_at__lt=_ago(now, d))
                                .exclude(kind=CredentialEventKind.AUTH_FAILED)),
        purge=lambda now, d: credential_events_purge(older_than=_ago(now, d), batch_size=BATCH),
    ),
    DataClass.MONITOR_EVENTS: _Class(
        count=lambda now, d: _n(MonitorEvent.objects.filter(at__lt=_ago(now, d))),
        purge=lambda now, d: monitor_events_purge(older_than=_ago(now, d), batch_size=BATCH),
    ),
    DataClass.STAFF_AUDIT: _Class(
        count=lambda now, d: _n(StaffAction.objects.filter(created_at__lt=_ago(now, d))),
        purge=lambda now, d: staff_actions_purge(older_than=_ago(now, d), batch_size=BATCH),
    ),
    DataClass.ALERT_HISTORY: _Class(
        count=_alert_history_count,
        purge=lambda now, d: sum(alerts_history_purge(older_than=_ago(now, d)).values()),
    ),
    # Screenshots and log tails: what a worker saw and logged of a failed attempt.
    DataClass.EVIDENCE: _Class(
        count=lambda now, d: (
            _n(AttemptEvidence.objects.filter(created_at__lt=_ago(now, d)))
            + _n(JobAttempt.objects.filter(claimed_at__lt=_ago(now, d)).exclude(log_tail=""))),
        purge=lambda now, d: (evidence_purge(older_than=_ago(now, d))
                              + log_tails_purge(older_than=_ago(now, d))),
    ),
}

Progress = Callable[[str, int, int], None]


def retention_class_purge(*, data_class: str, now: dt.datetime | None = None) -> int:
    """Purge one class by its policy, without an audit row (the frequent schedules of a few classes)."""
    days = retention_days()[data_class]
    if days is None:
        return 0
    return CLASSES[data_class].purge(now or timezone.now(), days)


def retention_purge(*, actor: Actor, dry_run: bool = False, now: dt.datetime | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Apply the retention policy to every class; return (and audit, once) the counts per class.

    With `dry_run` nothing is deleted: the counts are what a run now would delete. Classes kept
    forever are reported as null. Each class deletes in batches of short transactions; the audit
    row is written at the end, so it says what was actually done.
    """
    now = now or timezone.now()
    days = retention_days()
    counts: dict[str, int | None] = {}
    started = time.monotonic()
    for index, (name, data_class) in enumerate(CLASSES.items()):
        keep = days[name]
        if keep is None:
            counts[name] = None
        else:
            counts[name] = data_class.count(now, keep) if dry_run else data_class.purge(now, keep)
        if progress is not None:
            progress(name, index + 1, len(CLASSES))
    staff_action_record(
        actor=actor, action="retention.purge_dry_run" if dry_run else "retention.purge",
        object_type="leadops.retentionpolicy", object_count=sum(c or 0 for c in counts.values()),
        detail={"dry_run": dry_run, "counts": counts, "days": {k: days[k] for k in CLASSES},
                "seconds": round(time.monotonic() - started, 3)},
    )
    return {"dry_run": dry_run, "counts": counts}
