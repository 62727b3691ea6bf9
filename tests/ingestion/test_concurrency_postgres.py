"""On PostgreSQL, two transactions reporting the same lead at the same moment: one added, one duplicate.

Real threads, real transactions: each thread opens its own connection, waits at a barrier so both
insert together, and holds its transaction open a moment after inserting, so the other one's insert
has to wait on the unique index and then see the committed row.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import transaction

from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.schema import parse_lead_rows
from ingestion.services import IngestResult, lead_batch_ingest
from tests.ingestion.conftest import lead, saudi_mobiles
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(batches: dict[str, list[dict[str, Any]]], *, hold_s: float = 0.2) -> dict[str, IngestResult]:
    """Ingest each worker's batch in its own thread and transaction, all starting together."""
    barrier = threading.Barrier(len(batches))
    results: dict[str, IngestResult] = {}

    def run(worker_id: str, raw: list[dict[str, Any]]) -> None:
        rows = parse_lead_rows(raw, max_leads=1000)
        with transaction.atomic():
            barrier.wait(timeout=30)
            results[worker_id] = lead_batch_ingest(rows=rows, provider="maps", worker_id=worker_id)
            time.sleep(hold_s)

    run_in_threads(run, batches.items(), timeout=120)
    return results


def test_same_lead_from_two_workers_at_the_same_moment_is_added_once():
    results = race({"w-a": [lead("Cafe A", "0501234567")], "w-b": [lead("Cafe B", "+966 50 123 4567")]})
    assert sorted((r.added, r.duplicates_existing) for r in results.values()) == [(0, 1), (1, 0)]
    assert LeadFingerprint.objects.count() == 1
    assert Lead.objects.count() == 1
    assert sum(IngestCounter.objects.values_list("added", flat=True)) == 1
    assert sum(IngestCounter.objects.values_list("duplicates", flat=True)) == 1


def test_overlapping_batches_in_opposite_orders_neither_deadlock_nor_lose_a_lead():
    phones = saudi_mobiles(200)
    forward = [lead(f"F{i}", phone) for i, phone in enumerate(phones)]
    # The second worker sends the second half and the first half reversed: half overlaps.
    backward = [lead(f"B{i}", phone) for i, phone in enumerate(reversed(phones[100:] + saudi_mobiles(100, start=500)))]
    results = race({"w-a": forward, "w-b": backward}, hold_s=0.1)
    added = sum(r.added for r in results.values())
    duplicates = sum(r.duplicates for r in results.values())
    assert added == 300 and duplicates == 100
    assert LeadFingerprint.objects.count() == Lead.objects.count() == 300
    assert sum(IngestCounter.objects.values_list("added", flat=True)) == 300


def test_many_workers_racing_on_one_number():
    results = race({f"w-{i}": [lead(f"Shop {i}", "0551112222")] for i in range(6)}, hold_s=0.05)
    assert sum(r.added for r in results.values()) == 1
    assert sum(r.duplicates for r in results.values()) == 5
    assert Lead.objects.count() == 1
