"""On PostgreSQL the common claim asks its guards inside the claim statement, which also starts the
attempts (queueing/services/claim.py; docs/SYSTEM_OVERVIEW.md, "Guards on the claim"): one statement
where there were three, and the same jobs handed out whether a guard is in force or not."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from queueing.models import AttemptState, JobAttempt, JobState
from queueing.services import BreakerAction, breaker_force, jobs_pull
from queueing.services import claim as claim_module
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not django_settings.IS_POSTGRES,
                       reason="SQLite claims in three statements; the PostgreSQL leg of CI runs this"),
]


def _pull(worker, max_jobs: int, **kwargs):
    with CaptureQueriesContext(connection) as captured:
        result = jobs_pull(worker=worker, max_jobs=max_jobs, **kwargs)
    guard_reads = [q for q in captured.captured_queries if "FROM queueing_breaker b" in q["sql"]
                   and "gate AS" not in q["sql"]]
    attempt_inserts = [q for q in captured.captured_queries if 'INSERT INTO "queueing_jobattempt"' in q["sql"]]
    return result, len(guard_reads), len(attempt_inserts)


def test_an_unguarded_claim_is_one_statement_with_its_attempts():
    worker, _ = make_worker()
    jobs = make_jobs(3)
    result, guard_reads, attempt_inserts = _pull(worker, 5)
    assert (guard_reads, attempt_inserts) == (0, 0)
    assert sorted(c.job_id for c in result.claims) == sorted(job.pk for job in jobs)
    for claim in result.claims:
        attempt = JobAttempt.objects.get(pk=claim.attempt_id)
        assert (attempt.job_id, attempt.number, attempt.worker_id) == (claim.job_id, 1, worker.pk)
        assert attempt.state == AttemptState.RUNNING and attempt.error is None and attempt.reports == 0
        assert attempt.lease_expires_at == claim.lease_expires_at and attempt.log_tail == ""
        assert attempt.job.state == JobState.LEASED and attempt.job.current_attempt_id == claim.attempt_id


def test_an_open_provider_breaker_is_obeyed_and_the_claim_made_the_guarded_way():
    worker, _ = make_worker()
    make_jobs(2, provider=make_provider("storm"), priority=5)
    calm = make_jobs(2, provider=make_provider("calm"))
    breaker_force(scope="provider", key="storm", action=BreakerAction.FORCE_OPEN)
    result, guard_reads, _ = _pull(worker, 5)
    assert guard_reads == 1
    assert sorted(c.job_id for c in result.claims) == sorted(job.pk for job in calm)
    assert JobAttempt.objects.count() == 2


def test_the_worker_s_own_open_breaker_blocks_it_and_another_worker_s_does_not():
    worker, _ = make_worker(worker_id="w-open")
    other, _ = make_worker(worker_id="w-fine")
    make_jobs(2)
    breaker_force(scope="worker", key=worker.pk, action=BreakerAction.FORCE_OPEN)
    blocked, _, _ = _pull(worker, 2)
    assert blocked.claims == [] and blocked.worker_blocked
    claim_module.unguarded_claims.guarded_until = 0.0
    fine, guard_reads, _ = _pull(other, 2)
    assert guard_reads == 0 and len(fine.claims) == 2


def test_after_a_guard_the_process_goes_the_guarded_way_for_a_while_then_tries_again(monkeypatch):
    worker, _ = make_worker()
    provider = make_provider("maps", quota_per_min=6000, quota_burst=100)
    make_jobs(6, provider=provider)
    now = [1000.0]
    monkeypatch.setattr(claim_module.time, "monotonic", lambda: now[0])
    _, guard_reads, _ = _pull(worker, 1)
    assert guard_reads == 1  # the statement found the quota and leased nothing; then the guarded way
    provider.quota_per_min = None
    provider.save()
    _, guard_reads, _ = _pull(worker, 1)
    assert guard_reads == 1  # straight the guarded way: the quota was seen a moment ago
    now[0] += claim_module.unguarded_claims.RETRY_AFTER_S
    result, guard_reads, _ = _pull(worker, 1)
    assert guard_reads == 0 and len(result.claims) == 1
    assert JobAttempt.objects.count() == 3
