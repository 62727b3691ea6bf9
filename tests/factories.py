"""Factories for the suite: real rows through the real services, no fixture files."""

from __future__ import annotations

import itertools
from typing import Any

from core.models import StaffAction
from queueing.models import Job, Provider
from queueing.services import jobs_enqueue, provider_get_or_create
from workers_mgmt.models import Worker
from workers_mgmt.services import IssuedCredential, worker_create

_seq = itertools.count(1)


def make_worker(*, worker_id: str | None = None, **kwargs: Any) -> tuple[Worker, IssuedCredential]:
    from tests.log_guard import remember_secret

    worker, issued = worker_create(worker_id=worker_id or f"w-{next(_seq)}", **kwargs)
    remember_secret(issued.secret)  # no log line of the run may hold it (tests/log_guard.py)
    return worker, issued


def make_provider(name: str = "maps", **policy: Any) -> Provider:
    provider = provider_get_or_create(name=name)
    if policy:
        for field, value in policy.items():
            setattr(provider, field, value)
        provider.save()
    return provider


def make_jobs(count: int = 1, *, provider: Provider | None = None, priority: int = 0,
              payload: dict[str, Any] | None = None) -> list[Job]:
    provider = provider or make_provider()
    return jobs_enqueue(provider=provider, payloads=[payload or {"query": "coffee", "city": "Riyadh"}] * count,
                        priority=priority)


def lead(name: str = "Cafe", phone: str = "0501234567", **extra: Any) -> dict[str, Any]:
    return {"name": name, "phone": phone, **extra}


def only_action(action: str) -> StaffAction:
    """The one StaffAction row of `action` (fails, listing every row, unless there is exactly one)."""
    rows = list(StaffAction.objects.filter(action=action))
    assert len(rows) == 1, [str(row) for row in StaffAction.objects.all()]
    return rows[0]
