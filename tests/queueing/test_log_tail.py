"""A report's `log_tail`: the last lines of the worker's log for the attempt, stored masked, at most 16 KiB."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from leadops.retention import retention_class_purge
from queueing.models import JobAttempt
from queueing.services import log_tails_purge
from tests.factories import make_jobs, make_provider

pytestmark = pytest.mark.django_db

TAIL = "GET /maps?q=cafes 200\ncalled 0501234567 and +966 55 123 4567, wrote to ali@example.com\nblocked"


def pull_one(signed) -> dict:
    return signed.pull(1).json()["jobs"][0]


def failed(claim: dict, **extra) -> dict:
    return {"attempt_id": claim["attempt_id"], "outcome": "failed",
            "error": {"code": "blocked", "message": "403", "retryable": True}, **extra}


def test_a_failed_reports_log_tail_is_stored_masked_on_its_attempt(signed):
    make_jobs(1, provider=make_provider("maps"))
    claim = pull_one(signed)
    assert signed.report(claim["id"], failed(claim, log_tail=TAIL)).status_code == 200
    stored = JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail
    assert stored.startswith("GET /maps?q=cafes 200\n") and stored.endswith("\nblocked")
    assert "0501234567" not in stored and "123 4567" not in stored and "ali@" not in stored
    assert "+9665****4567" in stored and "a***@example.com" in stored


def test_a_partial_report_keeps_its_tail_and_the_final_one_replaces_it(signed):
    make_jobs(1, provider=make_provider("maps"))
    claim = pull_one(signed)
    signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "partial", "leads": [],
                                "log_tail": "first page"})
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail == "first page"
    signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail == "first page"  # none sent: kept
    job_two = make_jobs(1, provider=make_provider("dir"))[0]
    claim = pull_one(signed)
    assert claim["id"] == job_two.pk
    signed.report(claim["id"], failed(claim, log_tail="final words"))
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail == "final words"


@pytest.mark.parametrize("tail", ["x" * (16 * 1024 + 1), "é" * (8 * 1024 + 1), 42, ["a"], "nul\x00byte"])
def test_a_log_tail_over_16_kib_or_not_text_is_422_and_changes_nothing(signed, tail):
    make_jobs(1, provider=make_provider("maps"))
    claim = pull_one(signed)
    response = signed.report(claim["id"], failed(claim, log_tail=tail))
    assert response.status_code == 422
    assert "log_tail" in response.json()["error"]["fields"]
    attempt = JobAttempt.objects.get(pk=claim["attempt_id"])
    assert (attempt.state, attempt.log_tail) == ("running", "")


def test_exactly_16_kib_is_taken(signed):
    make_jobs(1, provider=make_provider("maps"))
    claim = pull_one(signed)
    assert signed.report(claim["id"], failed(claim, log_tail="y" * 16 * 1024)).status_code == 200
    assert len(JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail) == 16 * 1024


def test_an_exchange_item_carries_its_log_tail_masked(signed):
    make_jobs(2, provider=make_provider("maps"))
    claims = signed.pull(2).json()["jobs"]
    items = [{"job_id": c["id"], "idempotency_key": str(uuid.uuid4()), **failed(c, log_tail=f"job {c['id']} at 0559876543")}
             for c in claims]
    answer = signed.post("/api/v1/jobs/exchange", {"reports": items, "pull": {"max": 0}})
    assert answer.status_code == 200 and [r["status"] for r in answer.json()["results"]] == [200, 200]
    for claim in claims:
        assert JobAttempt.objects.get(pk=claim["attempt_id"]).log_tail == f"job {claim['id']} at +9665****6543"
    bad = {**items[0], "idempotency_key": str(uuid.uuid4()), "log_tail": "z" * (16 * 1024 + 1)}
    refused = signed.post("/api/v1/jobs/exchange", {"reports": [bad]}).json()["results"][0]
    assert refused["status"] == 422 and "log_tail" in refused["body"]["error"]["fields"]


def test_log_tails_follow_the_evidence_retention(signed, clock):
    make_jobs(2, provider=make_provider("maps"))
    old, new = signed.pull(2).json()["jobs"]
    JobAttempt.objects.filter(pk=old["attempt_id"]).update(log_tail="old lines",
                                                           claimed_at=timezone.now() - dt.timedelta(days=15))
    JobAttempt.objects.filter(pk=new["attempt_id"]).update(log_tail="new lines",
                                                           claimed_at=timezone.now() - dt.timedelta(days=13))
    assert retention_class_purge(data_class="evidence") == 1
    assert JobAttempt.objects.get(pk=old["attempt_id"]).log_tail == ""
    assert JobAttempt.objects.get(pk=new["attempt_id"]).log_tail == "new lines"
    assert log_tails_purge(older_than=timezone.now()) == 1


def test_the_attempt_and_dead_job_pages_show_the_masked_tail(admin_client, signed):
    make_jobs(1, provider=make_provider("once", max_attempts=1))
    claim = pull_one(signed)
    signed.report(claim["id"], failed(claim, log_tail="saw 0501234567 <b>bold</b>"))
    attempt_page = admin_client.get(f"/admin/queueing/jobattempt/{claim['attempt_id']}/change/").content.decode()
    assert "saw +9665****4567 &lt;b&gt;bold&lt;/b&gt;" in attempt_page and "0501234567" not in attempt_page
    dead_page = admin_client.get(f"/admin/queueing/deadjob/{claim['id']}/change/").content.decode()
    assert "attempt 1" in dead_page and "saw +9665****4567" in dead_page
