"""The report's four reads on PostgreSQL are statements written once, with one array parameter each
(queueing/services/exchange.py, `_report_reads`): the same SQL whatever the number of items, which
the ORM's `pk__in` compiled anew, longer with each item (docs/PERFORMANCE.md, "The fleet's exchange,
stage by stage")."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import lead

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.IS_POSTGRES,
                       reason="SQLite keeps the ORM's reads; the PostgreSQL leg of CI runs this"),
]

READS = ("queueing_job", "queueing_provider", "queueing_reportreceipt", "queueing_jobattempt")


def _reads(signed, items: int) -> tuple[list[str], dict]:
    from tests.factories import make_jobs

    make_jobs(items)
    jobs = signed.pull(items).json()["jobs"]
    reports = [{"job_id": job["id"], "attempt_id": job["attempt_id"], "idempotency_key": str(uuid.uuid4()),
                "outcome": "succeeded", "leads": [lead(phone=f"05012345{index:02d}")]}
               for index, job in enumerate(jobs)]
    with CaptureQueriesContext(connection) as captured:
        answer = signed.post("/api/v1/jobs/exchange", {"reports": reports}).json()
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().startswith("SELECT")
               and any(f'FROM "{table}" WHERE' in q["sql"] for table in READS)]
    return selects, answer


def test_the_reports_reads_are_one_shape_at_1_and_10_items(signed):
    one, answer_one = _reads(signed, 1)
    ten, answer_ten = _reads(signed, 10)
    assert [r["status"] for r in answer_one["results"]] == [200]
    assert [r["status"] for r in answer_ten["results"]] == [200] * 10
    assert len(one) == 4 and all("= ANY(" in sql for sql in one)
    # Parameters are bound apart from the text: the statements themselves are identical.
    strip = [sql.split(" WHERE ")[0] for sql in one]
    assert strip == [sql.split(" WHERE ")[0] for sql in ten]
    assert one[0].rstrip().endswith("FOR UPDATE")


def test_a_replayed_exchange_still_answers_from_its_receipts(signed):
    from tests.factories import make_jobs

    make_jobs(2)
    jobs = signed.pull(2).json()["jobs"]
    reports = [{"job_id": job["id"], "attempt_id": job["attempt_id"], "idempotency_key": f"key-{job['id']}",
                "outcome": "succeeded", "leads": [lead()]} for job in jobs]
    first = signed.post("/api/v1/jobs/exchange", {"reports": reports}).json()
    again = signed.post("/api/v1/jobs/exchange", {"reports": reports}).json()
    assert again["results"] == first["results"]
    reports[0]["leads"] = [lead(name="Another cafe")]  # same key, another body
    changed = signed.post("/api/v1/jobs/exchange", {"reports": reports}).json()
    assert changed["results"][0]["status"] == 422
    assert changed["results"][0]["body"]["error"]["code"] == "idempotency_key_reused"
    assert changed["results"][1] == first["results"][1]


def test_the_breakers_are_read_in_the_statement_that_counts_the_outcomes(signed):
    from queueing.models import Breaker, BreakerOutcome
    from tests.factories import make_jobs

    make_jobs(2)
    jobs = signed.pull(2).json()["jobs"]
    reports = [{"job_id": job["id"], "attempt_id": job["attempt_id"], "idempotency_key": str(uuid.uuid4()),
                "outcome": "succeeded", "leads": [lead()]} for job in jobs]
    with CaptureQueriesContext(connection) as captured:
        answer = signed.post("/api/v1/jobs/exchange", {"reports": reports}).json()
    assert [r["status"] for r in answer["results"]] == [200, 200]
    breakers, outcomes = Breaker._meta.db_table, BreakerOutcome._meta.db_table
    [statement] = [q["sql"] for q in captured.captured_queries if breakers in q["sql"] or outcomes in q["sql"]]
    assert statement.lstrip().startswith("WITH counted AS (INSERT INTO " + outcomes)
    assert BreakerOutcome.objects.filter(scope="worker", key=signed.worker_id).get().successes == 2
