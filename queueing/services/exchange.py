"""Exchange (protocol v1.1): many reports in one transaction, each isolated in its own savepoint.

Each item is exactly the v1 report (`job_report`) with its own Idempotency-Key, so its answer is
shaped by the same code and a replay returns the first answer. One item's failure rolls back its own
savepoint only (docs/API.md, "Exchange"). The claim runs after this transaction commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from core.errors import ProtocolError, error_body
from ingestion.schema import LeadInput
from queueing.services.report import ReportResult, job_report
from workers_mgmt.models import Worker


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
    results: list[ReportResult] = []
    with transaction.atomic():
        for item in items:
            if isinstance(item, ReportResult):
                results.append(item)
                continue
            try:
                with transaction.atomic():
                    result = job_report(
                        worker=worker, job_id=item.job_id, attempt_id=item.attempt_id,
                        outcome=item.outcome, leads=item.leads, error=item.error,
                        idempotency_key=item.idempotency_key, request_hash=item.request_hash,
                    )
            except ProtocolError as exc:
                result = ReportResult(status=exc.status, body=error_body(exc.code, exc.message, exc.fields))
            results.append(result)
    return results
