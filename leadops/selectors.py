"""Reads of the leadops helpers: the replay log, worker presence, and the numbers /metrics exposes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alerts.selectors import alerts_firing_by_rule
from core.counters import counters_read
from leadops.models import MonitorEvent
from queueing.selectors import breaker_states, queue_depth_by_state_and_provider
from workers_mgmt.selectors import workers_online_count


def monitor_events_after(
    *, after_id: int, limit: int = 1000, ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Stored events with id > after_id (oldest first), plus any of `ids` (late commits in a gap)."""
    rows = list(MonitorEvent.objects.filter(id__gt=after_id).order_by("id")[:limit])
    if ids:
        rows += list(MonitorEvent.objects.filter(id__in=ids, id__lte=after_id))
        rows.sort(key=lambda row: row.pk)
    return [row.as_event() for row in rows]


def monitor_event_last_id() -> int:
    return MonitorEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


# Every outcome a report's answer counts a lead under (docs/API.md, "Metrics").
LEAD_OUTCOMES = ("added", "duplicates", "invalid", "suppressed")


def metrics_snapshot(*, now: dt.datetime, overdue_s: int) -> dict[str, Any]:
    """Every database-backed number of /metrics, read at scrape time so all processes agree.

    The counters come from monotonic totals (`MetricCounter`), never from rows the pruner deletes.
    """
    totals = counters_read()
    leads = {outcome: totals.get(f"leads_{outcome}", 0) for outcome in LEAD_OUTCOMES}
    seen = leads["added"] + leads["duplicates"]
    return {
        "depth": [(row["provider__name"], row["state"], row["count"])
                  for row in queue_depth_by_state_and_provider()],
        "claims": totals.get("claims", 0),
        "reports": totals.get("reports", 0),
        "leads": leads,
        "dup_ratio": (leads["duplicates"] / seen) if seen else 0.0,
        "breakers": breaker_states(),
        "workers_online": workers_online_count(cutoff=now - dt.timedelta(seconds=overdue_s)),
        "alerts_firing": alerts_firing_by_rule(),
    }
