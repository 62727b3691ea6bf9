"""django-q2 entry points of the live monitor: thin wrappers that call services."""

from __future__ import annotations

from leadops.ratelimit import ratelimit_states_purge
from leadops.services import monitor_events_trim, workers_offline_announce


def announce_offline_workers() -> int:
    return len(workers_offline_announce())


def trim_monitor_events() -> int:
    return monitor_events_trim()


def purge_rate_limit_states() -> int:
    return ratelimit_states_purge()
