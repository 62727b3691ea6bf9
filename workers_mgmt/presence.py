"""Worker presence: one `worker.offline` event per silent streak (the monitor only reads it)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import events
from workers_mgmt.models import WorkerOfflineNotice
from workers_mgmt.selectors import workers_overdue


def workers_offline_announce(*, now: dt.datetime | None = None) -> list[str]:
    """Publish `worker.offline` once for each worker whose heartbeat became overdue since last time.

    A silent streak is named by the worker's last heartbeat; the notice row remembers which streak was
    announced, so running this every minute (or twice at once) publishes one event per transition.
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    announced: list[str] = []
    with transaction.atomic():
        overdue = dict(workers_overdue(cutoff=cutoff))
        if not overdue:
            return []
        notices = dict(
            WorkerOfflineNotice.objects.filter(worker_id__in=list(overdue))
            .values_list("worker_id", "last_heartbeat_at")
        )
        fresh = [wid for wid in overdue if wid not in notices]
        # ignore_conflicts names no winners; the re-read does (a concurrent run has its own now).
        WorkerOfflineNotice.objects.bulk_create(
            [WorkerOfflineNotice(worker_id=wid, last_heartbeat_at=overdue[wid], announced_at=now)
             for wid in fresh],
            ignore_conflicts=True,
        )
        won = set(
            WorkerOfflineNotice.objects.filter(worker_id__in=fresh, announced_at=now)
            .values_list("worker_id", flat=True)
        )
        announced.extend(sorted(won))
        for wid, seen in notices.items():
            if seen == overdue[wid]:
                continue  # this streak was announced already
            # Compare-and-swap: only the run that moves the notice to this streak announces it.
            if WorkerOfflineNotice.objects.filter(worker_id=wid, last_heartbeat_at=seen).update(
                last_heartbeat_at=overdue[wid], announced_at=now
            ):
                announced.append(wid)
        events.publish_many("worker.offline", [
            {"worker_id": wid, "last_heartbeat_at": seen.isoformat() if (seen := overdue[wid]) else None}
            for wid in announced
        ])
    return announced
