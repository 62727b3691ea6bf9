"""Writes of the leadops helpers: the monitor event log and worker presence transitions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction

from leadops import events
from leadops.clock import now as clock_now
from leadops.models import MonitorEvent, WorkerOfflineNotice
from leadops.selectors import workers_overdue


def monitor_events_store(*, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append one commit's events to the replay log in one INSERT; set each stored event's `id`.

    Ephemeral events (heartbeats) are not stored and keep no id.
    """
    durable = [event for event in batch if event["type"] not in events.EPHEMERAL_TYPES]
    if not durable:
        return []
    rows = MonitorEvent.objects.bulk_create(
        [MonitorEvent(type=e["type"], at=dt.datetime.fromisoformat(e["at"]), data=e["data"]) for e in durable]
    )
    for event, row in zip(durable, rows, strict=True):
        event["id"] = row.pk
    return durable


def monitor_events_trim(*, keep: int | None = None) -> int:
    """Forget all but the newest `keep` events (the replay window of SSE Last-Event-ID)."""
    keep = settings.LEADOPS_MONITOR_EVENTS_KEEP if keep is None else keep
    newest = MonitorEvent.objects.order_by("-id").values_list("id", flat=True)[keep:keep + 1].first()
    if newest is None:
        return 0
    deleted, _ = MonitorEvent.objects.filter(id__lte=newest).delete()
    return deleted


def workers_offline_announce(*, now: dt.datetime | None = None) -> list[str]:
    """Publish `worker.offline` once for each worker whose heartbeat became overdue since last time.

    A silent streak is named by the worker's last heartbeat; the notice row remembers which streak was
    announced, so running this every minute (or twice at once) publishes one event per transition.
    """
    now = now or clock_now()
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
            {"worker_id": wid, "last_heartbeat_at": overdue[wid].isoformat() if overdue[wid] else None}
            for wid in announced
        ])
    return announced
