"""django-q2 entry points of the live monitor: thin wrappers that call services."""

from __future__ import annotations

from core.audit import Actor
from core.models import StaffSource
from core.ratelimit import ratelimit_states_purge
from leadops.models import DataClass
from leadops.retention import retention_class_purge, retention_purge
from leadops.services import monitor_events_trim


def trim_monitor_events() -> int:
    return monitor_events_trim()


def purge_rate_limit_states() -> int:
    return ratelimit_states_purge()


def purge_retention() -> dict:
    """The daily retention run: every data class by its policy, one audit row (docs/PRIVACY.md)."""
    return retention_purge(actor=Actor(name="schedule:purge_retention", source=StaffSource.COMMAND))


# The frequent purges of three classes, with their cut from the retention policy (not settings).
def prune_finished_jobs() -> int:
    return retention_class_purge(data_class=DataClass.ATTEMPTS)


def purge_auth_failures() -> int:
    return retention_class_purge(data_class=DataClass.AUTH_FAILURES)


def purge_alert_history() -> int:
    return retention_class_purge(data_class=DataClass.ALERT_HISTORY)
