"""django-q2 entry points of alerting: thin wrappers that call services."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from alerts.services import alerts_history_purge, evaluator_tick

# How long resolved alerts, delivered or failed notifications and ended silences are kept (admin
# history); docs/RUNBOOK.md, Alerts.
HISTORY_DAYS = 30


def evaluate_alerts() -> dict[str, int]:
    """One evaluator round; a fallback beside the `alerts_evaluate` process (schedules run once a minute)."""
    return evaluator_tick()


def purge_alert_history() -> dict[str, int]:
    return alerts_history_purge(older_than=timezone.now() - dt.timedelta(days=HISTORY_DAYS))
