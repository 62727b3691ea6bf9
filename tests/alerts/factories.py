"""Alerting test data made through the real services."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from tests.factories import make_worker
from workers_mgmt.models import Worker


def silent_workers(count: int, *, silent_for_s: float, prefix: str = "w") -> list[str]:
    """`count` workers whose last heartbeat was `silent_for_s` seconds ago (now = the test's clock)."""
    ids = [make_worker(worker_id=f"{prefix}-{index:03d}")[0].id for index in range(count)]
    silent_since = timezone.now() - dt.timedelta(seconds=silent_for_s)
    Worker.objects.filter(id__in=ids).update(last_heartbeat_at=silent_since, last_seen_at=silent_since)
    return ids


def heartbeat(worker_ids: list[str]) -> None:
    Worker.objects.filter(id__in=worker_ids).update(last_heartbeat_at=timezone.now(), last_seen_at=timezone.now())
