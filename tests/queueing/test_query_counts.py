"""Pull and report cost a constant number of queries, whatever the batch size."""

from __future__ import annotations

import pytest

from tests.factories import lead, make_jobs

pytestmark = pytest.mark.django_db

# Each signed request also reads its failed-authentication budget before the signature is checked
# one query with the database store, none with Redis. A claim and a report each add one statement to
# the monotonic /metrics totals (core/counters.py).
PULL_BUDGET = 12
# Plus one set-based suppression-list lookup per report (ingestion, docs/PRIVACY.md).
REPORT_BUDGET = 21


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
