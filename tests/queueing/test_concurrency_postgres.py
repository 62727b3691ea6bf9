"""On PostgreSQL, concurrent claimers never share a job (row locks are real only there)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from queueing.models import Job, JobAttempt, JobState
from queueing.services import job_report, jobs_pull, report_request_hash
from tests.factories import make_jobs, make_provider, make_worker
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_sixteen_claimers_drain_two_thousand_jobs_each_exactly_once():
    provider = make_provider("maps")
    make_jobs(2000, provider=provider)
    workers = [make_worker(worker_id=f"c-{i}")[0] for i in range(16)]
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(workers))

    def run(worker):
        barrier.wait()
        while True:
            claims = jobs_pull(worker=worker, max_jobs=7).claims
            if not claims:
                break
            for claim in claims:
                job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id,
                           outcome="succeeded", leads=[], error=None,
                           idempotency_key=f"{claim.attempt_id}",
                           request_hash=report_request_hash(job_id=claim.job_id, body={}))
            with lock:
                claimed.extend(claim.job_id for claim in claims)

    run_in_threads(run, [(worker,) for worker in workers])
    counts = Counter(claimed)
    assert len(counts) == 2000
    assert max(counts.values()) == 1
    assert Job.objects.filter(state=JobState.SUCCEEDED).count() == 2000
    assert not Job.objects.filter(state=JobState.LEASED).exists()
    assert JobAttempt.objects.count() == 2000
    # More than one claimer really took part.
    assert JobAttempt.objects.values("worker").distinct().count() > 1
