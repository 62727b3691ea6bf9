"""Writes of the live monitor: its event outbox (the replay log)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from core import events
from core.audit import Actor, audited_update
from core.db import rows_insert
from core.purge import batched_delete
from leadops.models import MonitorEvent, RetentionPolicy


def monitor_events_store(*, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write one transaction's events to the outbox (the replay log) in one INSERT; set their `id`s.

    Called by core/events.py inside the publishing transaction, so the rows commit with the change.

    Ephemeral events (heartbeats) are not stored and keep no id.
    """
    durable = [event for event in batch if event["type"] not in events.EPHEMERAL_TYPES]
    if not durable:
        return []
    rows = [MonitorEvent(type=event["type"], at=dt.datetime.fromisoformat(event["at"]), data=event["data"])
            for event in durable]
    rows_insert(model=MonitorEvent, rows=rows)
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


def monitor_events_purge(*, older_than: dt.datetime, batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete replay-log events older than `older_than`, beside the count-based trim (retention)."""
    return batched_delete(queryset=MonitorEvent.objects.filter(at__lt=older_than), batch_size=batch_size,
                          raw=True, dry_run=dry_run)


def retention_policy_set(*, policy: RetentionPolicy, days: int | None, actor: Actor) -> dict[str, list[Any]]:
    """Change how long one data class is kept (admin), audited; the next purge applies it."""
    return audited_update(instance=policy, values={"days": days}, actor=actor, action="retention.policy_set",
                          object_type="leadops.retentionpolicy")
