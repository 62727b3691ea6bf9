"""Pull and report cost a constant number of queries, whatever the batch size."""

from __future__ import annotations

import itertools
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import lead, make_jobs
from workers_mgmt.services import worker_config_cache_clear

pytestmark = pytest.mark.django_db

# Each signed request also reads its failed-authentication budget before the signature is checked
# one query with the database store, none with Redis. A claim and a report each add one statement to
# the monotonic /metrics totals (core/counters.py), and the monitor events' outbox INSERT, written
# in the request's own transaction (core/events.py). That INSERT used to run after the commit, where
# these tests never saw it (a test's transaction never commits): the request sends no more queries.
PULL_BUDGET = 13
# A worker's first request (and then one every LEADOPS_LIVENESS_REFRESH_S) refreshes its liveness and
# answers what a heartbeat would: the worker's UPDATE (which also reads its update target and whether
# a push key waits), the online event and the configuration (docs/API.md, "Liveness"). The same
# whatever the batch.
STANDIN = 3
# Plus one set-based suppression-list lookup per report (ingestion, docs/PRIVACY.md).
REPORT_BUDGET = 21
EXCHANGE_BUDGET = 30


@pytest.mark.parametrize("batch", [1, 10, 50])
def test_pull_query_count_is_flat(signed, django_assert_max_num_queries, batch):
    make_jobs(batch)
    with django_assert_max_num_queries(PULL_BUDGET + STANDIN):
        response = signed.pull(batch)
    assert len(response.json()["jobs"]) == batch
    assert "update_target" in response.json()  # it stood in for a heartbeat


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


def _leg() -> str:
    from django.conf import settings

    return connection.vendor + ("+redis" if settings.REDIS_URL else "")


# What a signed request costs, exactly (docs/PERFORMANCE.md, "What a request costs"), with the
# per-process caches warm: the credential and the worker configuration are read at most every few
# seconds per process. Without Redis, three more statements: the failed-authentication budget read,
# the nonce insert and the rate-limit upsert. On SQLite the claim is three statements, not one.
# A claim and a report write their monitor events into the outbox inside their own transaction
# (one INSERT each), where they used to cost a second transaction after the commit.
REQUEST_QUERIES = {
    # The worker's UPDATE, which returns its update target too (releases_app.selectors.update_target_subquery;
    # docs/PERFORMANCE.md, "The heartbeat, round two").
    "heartbeat": {"postgresql+redis": 1, "postgresql": 4, "sqlite": 4, "sqlite+redis": 1},
    # On PostgreSQL, with no breaker open and no quota, the guard's read, the claim and the attempts'
    # INSERT are one statement (queueing/services/claim.py, `_GATE_SQL`).
    "pull_empty": {"postgresql+redis": 3, "postgresql": 6, "sqlite": 7, "sqlite+redis": 4},
    "pull": {"postgresql+redis": 5, "postgresql": 8, "sqlite": 11, "sqlite+redis": 8},
}
# An exchange of succeeded items with 5 leads each and a pull of 10, the configuration read cold.
# Statements, not round trips: on PostgreSQL the report's four reads (jobs locked, their providers,
# receipts, attempts) travel together, and so do its writes (docs/PERFORMANCE.md, "Round trips").
EXCHANGE_QUERIES = {"postgresql+redis": 21, "postgresql": 24, "sqlite": 30, "sqlite+redis": 27}


def _warm(signed) -> None:
    assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200


def test_heartbeat_costs_the_update_of_its_worker(signed, django_assert_num_queries):
    # The look-up of a push key to deliver is skipped for a few seconds after it found none.
    _warm(signed)
    with django_assert_num_queries(REQUEST_QUERIES["heartbeat"][_leg()]):
        assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200


def test_an_empty_pull_costs_the_breakers_and_the_claim(signed, django_assert_num_queries):
    _warm(signed)
    with django_assert_num_queries(REQUEST_QUERIES["pull_empty"][_leg()]):
        assert signed.pull(1).json() == {"jobs": [], "retry_after_s": 5}


@pytest.mark.parametrize("batch", [1, 10])
def test_a_pull_costs_the_same_at_1_and_10_jobs(signed, django_assert_num_queries, batch):
    make_jobs(batch)
    _warm(signed)
    with django_assert_num_queries(REQUEST_QUERIES["pull"][_leg()]):
        assert len(signed.pull(batch).json()["jobs"]) == batch


@pytest.mark.parametrize("batch", [1, 10, 50])
def test_pull_of_a_provider_with_a_quota_is_flat_too(signed, django_assert_max_num_queries, batch):
    # The guard adds: lock the quota row, then (SQLite) one read per limited provider, and the
    # write of the tokens taken; none of it grows with the batch.
    from tests.factories import make_provider

    make_jobs(batch, provider=make_provider("maps", quota_per_min=6000, quota_burst=100))
    with django_assert_max_num_queries(PULL_BUDGET + STANDIN + 3):
        response = signed.pull(batch)
    assert len(response.json()["jobs"]) == batch



_numbers = itertools.count()


def _exchange_queries(signed, items: int, *, leads_per_item: int,
                      outcomes: tuple[str, ...] = ("failed", "partial", "succeeded")) -> int:
    make_jobs(items + 10)
    claims = signed.pull(items).json()["jobs"]
    # Item i has outcome i of `outcomes`, the rest the last one: a single failure keeps the breaker
    # closed, so the pull that follows takes its ten jobs.
    chosen = [outcomes[min(i, len(outcomes) - 1)] for i in range(items)]
    error = {"code": "blocked", "message": "", "retryable": True}
    reports = [{"job_id": c["id"], "idempotency_key": str(uuid.uuid4()), "attempt_id": c["attempt_id"],
                "outcome": outcome,
                "leads": [lead(f"S{i}", f"055{next(_numbers):07d}") for _ in range(leads_per_item)],
                **({"error": error} if outcome == "failed" else {})}
               for i, (c, outcome) in enumerate(zip(claims, chosen, strict=True))]
    # Cold per-process caches (worker configuration), so every count includes the same reads.
    worker_config_cache_clear()
    with CaptureQueriesContext(connection) as captured:
        response = signed.post("/api/v1/jobs/exchange", {"reports": reports, "pull": {"max": 10}})
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200] * items
    assert sum(r["body"]["added"] for r in results) == items * leads_per_item
    assert len(response.json()["jobs"]) == 10
    return len(captured.captured_queries)


def test_exchange_query_count_is_the_same_at_1_and_50_items(signed):
    # Locks, receipts, attempts, the bulk updates, the receipts insert, the shared rows, the claim:
    # one statement each, whatever the number of items.
    one = _exchange_queries(signed, 1, leads_per_item=0)
    assert _exchange_queries(signed, 50, leads_per_item=0) == one
    assert one <= EXCHANGE_BUDGET


def test_exchange_of_items_with_5_leads_each_costs_the_same_at_1_and_50_items(signed):
    # One ingest call for all the items' leads (ingestion.lead_batches_ingest): its statements are
    # paid once per exchange, not once per item.
    one = _exchange_queries(signed, 1, leads_per_item=5, outcomes=("succeeded",))
    fifty = _exchange_queries(signed, 50, leads_per_item=5, outcomes=("succeeded",))
    assert fifty == one == EXCHANGE_QUERIES[_leg()]


def test_exchange_with_every_outcome_costs_the_same_at_3_and_50_items(signed):
    assert _exchange_queries(signed, 3, leads_per_item=5) == _exchange_queries(signed, 50, leads_per_item=5)
