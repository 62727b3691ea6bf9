"""Reads of the fleet: worker presence (who is overdue, how many are online)."""

from __future__ import annotations

import datetime as dt

from workers_mgmt.models import Worker


def workers_overdue(*, cutoff: dt.datetime) -> list[tuple[str, dt.datetime | None]]:
    """(worker id, last heartbeat) of enabled workers heard from once but not since `cutoff`."""
    return list(
        Worker.objects.filter(enabled=True, last_heartbeat_at__lt=cutoff)
        .order_by("id").values_list("id", "last_heartbeat_at")
    )


def workers_online_count(*, cutoff: dt.datetime) -> int:
    return Worker.objects.filter(enabled=True, last_heartbeat_at__gte=cutoff).count()
