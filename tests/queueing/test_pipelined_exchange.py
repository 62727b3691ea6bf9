"""The exchange's two transactions are sent pipelined on PostgreSQL (core/db/pipeline.py;
docs/PERFORMANCE.md, "Round trips"), and an error nobody waited for still fails the whole request."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from ingestion.models import Lead
from queueing.models import Job, JobState, ReportReceipt
from tests.factories import lead, make_jobs

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _pipeline_on(settings):
    # Off by default (docs/DEPLOY.md, LEADOPS_DB_PIPELINE): these tests are about the pipelined path.
    settings.LEADOPS_DB_PIPELINE = True


def _exchange_body(claims: list[dict]) -> dict:
    return {"reports": [{"job_id": c["id"], "idempotency_key": str(uuid.uuid4()), "attempt_id": c["attempt_id"],
                         "outcome": "succeeded", "leads": [lead(f"Shop {i}", f"05{i}1234567")]}
                        for i, c in enumerate(claims)],
            "pull": {"max": 3}}


def _statement_modes(signed, body: dict) -> tuple[dict, dict[str, bool]]:
    from psycopg.pq import PipelineStatus

    seen: dict[str, bool] = {}

    def record(execute, sql, params, many, context):
        # The claim is one statement with its attempts' INSERT (queueing/services/claim.py).
        for marker in ('UPDATE "queueing_job" AS t', 'INSERT INTO "queueing_reportreceipt"', "claimed AS (",
                       'INSERT INTO "leadops_monitorevent"'):
            if marker in sql:
                seen[marker] = connection.connection.pgconn.pipeline_status == PipelineStatus.ON
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = signed.post("/api/v1/jobs/exchange", body)
    assert response.status_code == 200, response.content
    return response.json(), seen


def test_the_report_and_the_claim_are_sent_pipelined(signed):
    make_jobs(6)
    claims = signed.pull(3).json()["jobs"]
    answer, seen = _statement_modes(signed, _exchange_body(claims))
    assert [result["status"] for result in answer["results"]] == [200, 200, 200]
    assert len(answer["jobs"]) == 3
    assert seen == dict.fromkeys(seen, True) and len(seen) == 4
    assert Job.objects.filter(state=JobState.SUCCEEDED).count() == 3
    assert ReportReceipt.objects.count() == 3 and Lead.objects.count() == 3


def test_with_the_pipeline_off_nothing_is_pipelined(signed, settings):
    settings.LEADOPS_DB_PIPELINE = False
    make_jobs(6)
    claims = signed.pull(3).json()["jobs"]
    answer, seen = _statement_modes(signed, _exchange_body(claims))
    assert len(answer["jobs"]) == 3
    assert seen == dict.fromkeys(seen, False) and len(seen) == 4


def test_a_write_that_fails_unread_fails_the_request_and_keeps_nothing(signed, monkeypatch, client):
    # The jobs' UPDATE is sent and not waited for; its failure surfaces later in the transaction.
    # The answer must not be a success, and nothing of the reports may stay.
    from queueing.models import JobAttempt
    from queueing.services import outcome

    make_jobs(3)
    claims = signed.pull(3).json()["jobs"]
    real = outcome.rows_update

    def with_a_ghost(*, model, rows, fields):
        if model is Job:
            rows = [*rows, Job(pk=10**9, provider=rows[0].provider, payload={})]
        return real(model=model, rows=rows, fields=fields)

    monkeypatch.setattr(outcome, "rows_update", with_a_ghost)
    client.raise_request_exception = False
    response = signed.post("/api/v1/jobs/exchange", _exchange_body(claims))
    assert response.status_code >= 500
    assert Job.objects.filter(state=JobState.LEASED).count() == 3
    assert not ReportReceipt.objects.exists() and not Lead.objects.exists()
    assert set(JobAttempt.objects.values_list("reports", flat=True)) == {0}
    # The connection is usable for the next request (the pipeline ended with the failure).
    assert signed.pull(1).status_code == 200
