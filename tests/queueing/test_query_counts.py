"""Pull and report cost a constant number of queries, whatever the batch size."""

from __future__ import annotations

import pytest

from tests.factories import lead, make_jobs

pytestmark = pytest.mark.django_db

# Each signed request also reads its failed-authentication budget before the signature is checked
# one query with the database store, none with Redis. A claim and a report each add one statement to
# the monotonic /metrics totals (core/counters.py), and the monitor events' outbox INSERT, written
# in the request's own transaction (core/events.py). That INSERT used to run after the commit, where
# these tests never saw it (a test's transaction never commits): the request sends no more queries.
PULL_BUDGET = 13
# Plus one set-based suppression-list lookup per report (ingestion, docs/PRIVACY.md).
REPORT_BUDGET = 21
EXCHANGE_BUDGET = 30


@pytest.mark.parametrize("batch", [1, 10, 50])
def test_pull_query_count_is_flat(signed, django_assert_max_num_queries, batch):
    make_jobs(batch)
    with django_assert_max_num_queries(PULL_BUDGET):
        response = signed.pull(batch)
    assert len(response.json()["jobs"]) == batch


@pytest.mark.parametrize("leads", [1, 100, 1000])
def test_report_query_count_is_flat(signed, django_assert_max_num_queries, leads):
    job_id = make_jobs(1)[0].pk
    claim = signed.pull(1).json()["jobs"][0]
    rows = [lead(f"Shop {i}", f"05{i % 10}{i:07d}"[:10]) for i in range(leads)]
    with django_assert_max_num_queries(REPORT_BUDGET):
        response = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                          "leads": rows})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["added"] + body["duplicates"] + body["invalid"] == leads


def test_heartbeat_query_count(signed, django_assert_max_num_queries):
    # 7, plus the failed-authentication budget read before the signature (one query without Redis)
    # and the look-up of a pending key to push.
    with django_assert_max_num_queries(9):
        assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200


@pytest.mark.parametrize("batch", [1, 10, 50])
def test_pull_of_a_provider_with_a_quota_is_flat_too(signed, django_assert_max_num_queries, batch):
    # The guard adds: lock the quota row, then (SQLite) one read per limited provider, and the
    # write of the tokens taken; none of it grows with the batch.
    from tests.factories import make_provider

    make_jobs(batch, provider=make_provider("maps", quota_per_min=6000, quota_burst=100))
    with django_assert_max_num_queries(PULL_BUDGET + 3):
        response = signed.pull(batch)
    assert len(response.json()["jobs"]) == batch



def _exchange_queries(signed, items: int, *, with_leads: bool) -> int:
    import uuid

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_jobs(items + 10)
    claims = signed.pull(items).json()["jobs"]
    reports = [{"job_id": c["id"], "idempotency_key": str(uuid.uuid4()), "attempt_id": c["attempt_id"],
                "outcome": "failed" if i == 0 else "partial" if i == 1 else "succeeded",
                "leads": [lead(f"S{i}", f"05{i:08d}")] if with_leads else []}
               for i, c in enumerate(claims)]
    with CaptureQueriesContext(connection) as captured:
        response = signed.post("/api/v1/jobs/exchange", {"reports": reports, "pull": {"max": 10}})
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == [200] * items
    assert len(response.json()["jobs"]) == 10
    return len(captured.captured_queries)


def test_exchange_query_count_is_the_same_at_1_and_50_items(signed):
    # Locks, receipts, attempts, the bulk updates, the receipts insert, the shared rows, the claim:
    # one statement each, whatever the number of items.
    # The first exchange of a test also fills the per-process worker configuration cache.
    _exchange_queries(signed, 1, with_leads=False)
    fifty = _exchange_queries(signed, 50, with_leads=False)
    one = _exchange_queries(signed, 1, with_leads=False)
    assert fifty == one
    assert one <= EXCHANGE_BUDGET


def test_exchange_with_leads_grows_only_by_ingestions_statements(signed):
    from django.db import connection

    # The one cost still paid per item: ingestion's statements for that item's leads, the
    # suppression-list lookup among them (docs/API.md, "Exchange", and docs/PERFORMANCE.md say why
    # it is not one call yet).
    per_item = 3 if connection.vendor == "postgresql" else 5
    _exchange_queries(signed, 1, with_leads=True)
    fifty = _exchange_queries(signed, 50, with_leads=True)
    one = _exchange_queries(signed, 1, with_leads=True)
    assert fifty - one == 49 * per_item
