"""On PostgreSQL, sixteen workers exchanging at once finish every job once and count every lead once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from django.test import Client

from ingestion.models import Lead
from queueing.models import Job, JobAttempt, JobState, ReportReceipt
from tests.factories import lead, make_jobs, make_provider, make_worker
from tests.signing import SignedClient
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS = 400
LEADS_PER_JOB = 3


def test_sixteen_workers_exchanging_finish_each_job_once_and_count_each_lead_once():
    make_jobs(JOBS, provider=make_provider("maps"))
    clients = []
    for i in range(16):
        _, issued = make_worker(worker_id=f"x-{i}")
        clients.append(SignedClient(Client(), worker_id=issued.worker_id, key_id=issued.key_id,
                                    secret=issued.secret))
    reported: list[int] = []
    added = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))

    def run(signed: SignedClient) -> None:
        barrier.wait()
        held: list[dict] = []
        while True:
            # Every job gets its own phones, plus one phone that every job reports: exactly one
            # report in the whole run may add it, all others must count it a duplicate.
            reports = [{
                "job_id": job["id"], "idempotency_key": str(uuid.uuid4()),
                "attempt_id": job["attempt_id"], "outcome": "succeeded",
                "leads": [lead(f"J{job['id']}-{n}", f"05{job['id']:07d}{n}"[:10] if n else "0599999999")
                          for n in range(LEADS_PER_JOB)],
            } for job in held]
            response = signed.post("/api/v1/jobs/exchange", {"reports": reports, "pull": {"max": 5}})
            assert response.status_code == 200, response.content
            body = response.json()
            with lock:
                for item, result in zip(reports, body["results"], strict=True):
                    assert result["status"] == 200, result
                    reported.append(item["job_id"])
                    added.update(result["body"])
            held = body["jobs"]
            if not held and not reports:
                break

    run_in_threads(run, [(signed,) for signed in clients])
    assert sorted(Counter(reported).values()) == [1] * JOBS  # every job reported once
    assert len(set(reported)) == JOBS
    assert Job.objects.filter(state=JobState.SUCCEEDED).count() == JOBS
    assert JobAttempt.objects.count() == JOBS
    assert ReportReceipt.objects.count() == JOBS
    # Every lead counted exactly once, and what was counted added is what is stored.
    assert added["added"] + added["duplicates"] + added["invalid"] == JOBS * LEADS_PER_JOB
    assert added["added"] == Lead.objects.count()
    assert Lead.objects.filter(phone_raw="0599999999").count() == 1
    assert JobAttempt.objects.values("worker").distinct().count() > 1
