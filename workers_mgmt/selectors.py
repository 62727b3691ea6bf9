"""Reads of the fleet for other apps (alerts reads workers only through here)."""

from __future__ import annotations

import datetime as dt

from workers_mgmt.models import Worker


def workers_heartbeat_overdue(*, cutoff: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(worker id, last heartbeat) of enabled workers heard from once but not since `cutoff`, by id.

    A worker that never sent a heartbeat is not overdue: it was created but not yet started.
    """
    return list(
        Worker.objects.filter(enabled=True, last_heartbeat_at__lt=cutoff)
        .order_by("id")
        .values_list("id", "last_heartbeat_at")
    )
