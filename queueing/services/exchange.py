"""Exchange (protocol v1.1): many reports in one transaction, each isolated in its own savepoint.

Each item is exactly the v1 report (`job_report`) with its own Idempotency-Key, so its answer is
shaped by the same code and a replay returns the first answer. One item's failure rolls back its own
savepoint only (docs/API.md, "Exchange"). The claim runs after this transaction commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils.timezone import now as clock_now

from core.counters import counters_add
from core.errors import ProtocolError, error_body
from ingestion.schema import LeadInput
from queueing.models import Job
from queueing.services.breakers import _breaker_outcome
from queueing.services.report import ReportResult, ReportTail, job_report
from workers_mgmt.models import Worker

# A deadlock aborts the whole transaction, which nothing has seen yet: it is safe to run again.
_DEADLOCK_TRIES = 3


@dataclass(frozen=True)
class ReportCall:
    """One report item, parsed and checked exactly as the v1 report endpoint checks its request."""

    job_id: int
    attempt_id: uuid.UUID
    outcome: str
    leads: list[LeadInput]
    error: dict[str, Any] | None
    idempotency_key: str
    request_hash: str


def reports_exchange(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    """Take many reports of one worker in one transaction; returns one result per item, in order.

    An item given as a `ReportResult` already failed its parsing (its error answer is passed
    through untouched). Every other item runs `job_report` in a savepoint of its own: its error
    becomes that item's answer and undoes only its own writes.
    """
    for attempt in range(_DEADLOCK_TRIES):
        try:
            return _reports_exchange_once(worker=worker, items=items)
        except OperationalError as exc:
            # Two exchanges whose leads share phones can take the fingerprint locks in opposite
            # orders (each item's batch is sorted, the items are not). PostgreSQL aborts one of them.
            if not _is_deadlock(exc) or attempt == _DEADLOCK_TRIES - 1 or connection.in_atomic_block:
                raise
    raise AssertionError("unreachable")


def _is_deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def _reports_exchange_once(*, worker: Worker, items: list[ReportCall | ReportResult]) -> list[ReportResult]:
    results: list[ReportResult] = []
    tail = ReportTail()
    with transaction.atomic():
        # One statement locks every reported job, in id order: two exchanges (or an exchange and a
        # staff action) then never wait for each other's jobs in opposite orders.
        job_ids = sorted({item.job_id for item in items if isinstance(item, ReportCall)})
        if job_ids:
            list(Job.objects.select_for_update(of=("self",)).filter(pk__in=job_ids).order_by("pk")
                 .values_list("pk", flat=True))
        for item in items:
            if isinstance(item, ReportResult):
                results.append(item)
                continue
            try:
                with transaction.atomic():
                    taken = ReportTail()
                    result = job_report(
                        worker=worker, job_id=item.job_id, attempt_id=item.attempt_id,
                        outcome=item.outcome, leads=item.leads, error=item.error,
                        idempotency_key=item.idempotency_key, request_hash=item.request_hash,
                        tail=taken,
                    )
                # Merged only once the item's savepoint was released: a failed item counts nothing.
                tail.amounts.update(taken.amounts)
                tail.outcomes.extend(taken.outcomes)
            except ProtocolError as exc:
                result = ReportResult(status=exc.status, body=error_body(exc.code, exc.message, exc.fields))
            results.append(result)
        # The shared rows last, as the v1 report does: every report updates the same /metrics rows
        # and every report of a provider the same breaker bucket, so their locks are held shortest.
        if tail.amounts:
            counters_add(amounts=dict(tail.amounts))
        now = clock_now()
        for provider, failed in tail.outcomes:
            _breaker_outcome(provider=provider, worker=worker, failed=failed, now=now)
    return results
