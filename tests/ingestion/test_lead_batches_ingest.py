"""lead_batches_ingest: the leads of many reports in one call, each report counted as if alone and in order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.audit import Actor
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.privacy import suppression_add
from ingestion.schema import parse_lead_rows
from ingestion.services import EMPTY_RESULT, IngestBatch, lead_batches_ingest
from tests.ingestion.conftest import lead, saudi_mobiles

pytestmark = pytest.mark.django_db


def batch(raw: list[dict[str, Any]], *, provider: str = "maps", worker_id: str = "w-1", job_id: int | None = None,
          attempt_id: uuid.UUID | None = None) -> IngestBatch:
    return IngestBatch(rows=parse_lead_rows(raw, max_leads=1000), provider=provider, worker_id=worker_id,
                       job_id=job_id, attempt_id=attempt_id)


def counts(result) -> tuple[int, int, int, int, int, int]:
    return (result.added, result.duplicates, result.duplicates_in_batch, result.duplicates_existing,
            result.invalid, result.suppressed)


def test_each_report_is_counted_as_if_ingested_alone_and_in_order():
    lead_batches_ingest(batches=[batch([lead("Old", "0550000009")])])
    results = lead_batches_ingest(batches=[
        batch([lead("A", "0550000001"), lead("A2", "+966550000001"), lead("Bad", "x")]),
        batch([lead("A3", "0550000001"), lead("B", "0550000002"), lead("Old again", "0550000009")]),
        batch([]),
        batch([lead("B2", "0550000002"), lead("C", "0550000003")]),
    ])
    assert [counts(r) for r in results] == [
        (1, 1, 1, 0, 1, 0),   # A added, its repeat in the same report, one invalid
        (1, 2, 0, 2, 0, 0),   # A from the report before and Old from an earlier call: both existing
        counts(EMPTY_RESULT),
        (1, 1, 0, 1, 0, 0),   # B from the report before
    ]
    assert LeadFingerprint.objects.count() == 4
    assert Lead.objects.count() == 5  # four numbers and one invalid lead


def test_each_lead_keeps_its_own_reports_job_attempt_and_worker():
    attempts = [uuid.uuid4(), uuid.uuid4()]
    lead_batches_ingest(batches=[
        batch([lead("A", "0550000001"), lead("Bad", "")], job_id=11, attempt_id=attempts[0], worker_id="w-1"),
        batch([lead("B", "0550000002")], job_id=12, attempt_id=attempts[1], worker_id="w-2", provider="web"),
    ])
    stored = {row[0]: row[1:] for row in Lead.objects.values_list("name", "job_id", "attempt_id", "worker_id",
                                                                  "provider")}
    assert stored == {"A": (11, attempts[0], "w-1", "maps"), "Bad": (11, attempts[0], "w-1", "maps"),
                      "B": (12, attempts[1], "w-2", "web")}
    # Each fingerprint names its own lead.
    linked = dict(LeadFingerprint.objects.values_list("lead__name", "lead__job_id"))
    assert linked == {"A": 11, "B": 12}


def test_counters_get_one_row_per_provider_and_worker_with_the_sums():
    lead_batches_ingest(batches=[
        batch([lead("A", "0550000001"), lead("Bad", "x")]),
        batch([lead("A", "0550000001"), lead("B", "0550000002")]),
        batch([lead("C", "0550000003")], worker_id="w-2"),
    ])
    rows = {(c.provider, c.worker_id): (c.added, c.duplicates, c.duplicates_existing, c.invalid)
            for c in IngestCounter.objects.all()}
    assert rows == {("maps", "w-1"): (2, 1, 1, 1), ("maps", "w-2"): (1, 0, 0, 0)}


def test_a_suppressed_number_is_suppressed_in_every_report(fixed_key):
    suppression_add(phone="0550000001", reason="opt-out", actor=Actor.command("test"))
    results = lead_batches_ingest(batches=[batch([lead("A", "0550000001")]),
                                           batch([lead("A", "+966550000001"), lead("B", "0550000002")])])
    assert [(r.added, r.suppressed) for r in results] == [(0, 1), (1, 1)]
    assert list(Lead.objects.values_list("name", flat=True)) == ["B"]


def test_only_empty_reports_cost_no_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert lead_batches_ingest(batches=[batch([]), batch([])]) == [EMPTY_RESULT, EMPTY_RESULT]


def test_one_report_and_fifty_cost_the_same_queries():
    def queries(reports: int, start: int) -> int:
        phones = iter(saudi_mobiles(reports * 5, start=start))
        batches = [batch([lead(f"S{i}", next(phones)) for i in range(5)], job_id=n, attempt_id=uuid.uuid4(),
                         provider=f"p{n % 3}") for n in range(reports)]
        with CaptureQueriesContext(connection) as captured:
            results = lead_batches_ingest(batches=batches)
        assert sum(r.added for r in results) == reports * 5
        return len(captured.captured_queries)

    # Suppression read, fingerprints and leads (one statement on PostgreSQL, three on SQLite), counters.
    expected = 3 if connection.vendor == "postgresql" else 5
    assert queries(1, 0) == queries(50, 1000) == expected
