"""django-q2 entry points of the live monitor: thin wrappers that call services."""

from __future__ import annotations

from core.ratelimit import ratelimit_states_purge
from leadops.services import monitor_events_trim


def trim_monitor_events() -> int:
    return monitor_events_trim()


def purge_rate_limit_states() -> int:
    return ratelimit_states_purge()
