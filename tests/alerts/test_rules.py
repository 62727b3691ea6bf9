"""Each built-in rule against real queue data made through the queue's own services."""

import uuid

import pytest

from alerts.models import Alert, AlertState
from alerts.services import alerts_evaluate, rule_set
from ingestion.schema import LeadInput
from queueing.services import breaker_force, breaker_reset, job_report, jobs_pull
from tests.factories import make_jobs, make_provider, make_worker

RETRYABLE = {"code": "blocked", "message": "captcha", "retryable": True}


def report(worker, claim, *, outcome="succeeded", leads=(), error=None):
    job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome, leads=list(leads),
               error=error, idempotency_key=str(uuid.uuid4()), request_hash=uuid.uuid4().hex)


def firing(kind):
    alerts = Alert.objects.filter(rule__kind=kind, state=AlertState.FIRING).order_by("fingerprint")
    return sorted(((a.labels, a.value) for a in alerts), key=lambda pair: sorted(pair[0].items()))


@pytest.fixture
def worker(db):
    return make_worker(worker_id="w-rules")[0]


def test_error_rate_fires_per_provider_and_per_worker(clock, worker):
    rule_set(kind="error_rate", threshold=0.5, for_seconds=0)
    provider = make_provider("maps", breaker_min_outcomes=1000)
    make_jobs(25, provider=provider)
    claims = jobs_pull(worker=worker, max_jobs=25).claims
    for claim in claims[:20]:
        report(worker, claim, outcome="failed", error=RETRYABLE)
    for claim in claims[20:]:
        report(worker, claim)
    alerts_evaluate()
    labels = [labels for labels, _ in firing("error_rate")]
    assert {"alertname": "error_rate", "severity": "warning", "provider": "maps"} in labels
    assert {"alertname": "error_rate", "severity": "warning", "worker": "w-rules"} in labels
    assert {value for _, value in firing("error_rate")} == {0.8}


def test_error_rate_needs_twenty_reports(clock, worker):
    rule_set(kind="error_rate", threshold=0.5, for_seconds=0)
    make_jobs(19, provider=make_provider("maps"))
    for claim in jobs_pull(worker=worker, max_jobs=19).claims:
        report(worker, claim, outcome="failed", error=RETRYABLE)
    alerts_evaluate()
    assert firing("error_rate") == []


def test_retry_spike_counts_failed_attempts_of_a_provider(clock, worker):
    rule_set(kind="retry_spike", threshold=5)
    make_jobs(6, provider=make_provider("maps", breaker_min_outcomes=1000))
    for claim in jobs_pull(worker=worker, max_jobs=6).claims:
        report(worker, claim, outcome="failed", error=RETRYABLE)
    alerts_evaluate()
    assert firing("retry_spike") == [({"alertname": "retry_spike", "severity": "warning", "provider": "maps"}, 6)]


def test_dlq_growth_counts_jobs_that_died(clock, worker):
    rule_set(kind="dlq_growth", threshold=3)
    make_jobs(3, provider=make_provider("maps", max_attempts=1))
    claims = jobs_pull(worker=worker, max_jobs=3).claims
    for claim in claims[:2]:
        report(worker, claim, outcome="failed", error=RETRYABLE)
    alerts_evaluate()
    assert firing("dlq_growth") == []
    report(worker, claims[2], outcome="failed", error=RETRYABLE)
    alerts_evaluate()
    assert [value for _, value in firing("dlq_growth")] == [3]


def test_stuck_jobs_finds_unclaimed_and_overdue_leases(clock, worker):
    rule_set(kind="stuck_jobs", threshold=600)
    provider = make_provider("maps", lease_seconds=120)
    make_jobs(3, provider=provider)
    jobs_pull(worker=worker, max_jobs=1).claims
    clock.shift(600)
    alerts_evaluate()
    assert firing("stuck_jobs") == []  # the lease lapsed 480 s ago, the ready jobs waited exactly 600 s
    clock.shift(130)
    alerts_evaluate()
    [(labels, value)] = firing("stuck_jobs")
    assert labels["provider"] == "maps" and value == 3
    assert "1 jobs leased past their lease and 2 ready but unclaimed" in Alert.objects.get().annotations["summary"]


def test_breaker_open_fires_while_the_breaker_is_open(clock, worker):
    make_provider("maps")
    breaker_force(scope="provider", key="maps", action="force_open")
    alerts_evaluate()
    assert firing("breaker_open") == [({"alertname": "breaker_open", "severity": "warning", "provider": "maps"}, 1)]
    breaker_reset(scope="provider", key="maps")
    clock.shift(10)
    alerts_evaluate()
    assert firing("breaker_open") == []
    assert Alert.objects.get(rule__kind="breaker_open").state == AlertState.RESOLVED


def test_zero_results_fires_when_successes_add_no_lead(clock, worker):
    rule_set(kind="zero_results", threshold=30)
    make_jobs(2, provider=make_provider("empty"))
    make_jobs(1, provider=make_provider("good"))
    claims = {c.provider: c for c in jobs_pull(worker=worker, max_jobs=3, providers=["good"]).claims}
    report(worker, claims["good"], leads=[LeadInput(name="Cafe", phone="0501234567")])
    for claim in jobs_pull(worker=worker, max_jobs=2, providers=["empty"]).claims:
        report(worker, claim)
    alerts_evaluate()
    assert firing("zero_results") == [({"alertname": "zero_results", "severity": "warning", "provider": "empty"}, 2)]
    clock.shift(31 * 60)  # the successes leave the window
    alerts_evaluate()
    assert firing("zero_results") == []
