"""Circuit breakers: a failing provider or worker is cut off, probed after the cooldown, restored."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from core.events import sink_register, sink_unregister
from queueing.models import Breaker, BreakerScope, BreakerState, BreakerTransition, Job, JobState
from queueing.services import (
    BreakerAction,
    breaker_force,
    breaker_reset,
    job_report,
    jobs_pull,
    report_request_hash,
)
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db

@pytest.fixture
def events():
    seen: list[dict] = []
    sink_register(seen.append)
    yield seen
    sink_unregister(seen.append)


def _report(worker, claim, *, ok: bool):
    error = None if ok else {"code": "blocked", "message": "captcha", "retryable": True}
    return job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id,
                      outcome="succeeded" if ok else "failed", leads=[], error=error,
                      idempotency_key=str(claim.attempt_id),
                      request_hash=report_request_hash(job_id=claim.job_id, body={"ok": ok}))


def _state(scope: str, key: str) -> str:
    breaker = Breaker.objects.filter(scope=scope, key=key).first()
    return breaker.state if breaker else BreakerState.CLOSED


def test_storm_opens_the_provider_breaker_skips_it_and_closes_through_half_open(
        clock, events, django_capture_on_commit_callbacks):
    storm = make_provider("storm")
    calm = make_provider("calm")
    make_jobs(200, provider=storm, priority=5)  # storm jobs come first whenever they may
    make_jobs(200, provider=calm)
    # Many workers, so no single worker sees 20 outcomes and only the provider's breaker trips.
    workers = [make_worker(worker_id=f"s-{i}")[0] for i in range(12)]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = 0
        while _state("provider", "storm") == BreakerState.CLOSED:
            worker = workers[outcomes % len(workers)]
            (claim,) = jobs_pull(worker=worker, max_jobs=1, providers=["storm"]).claims
            _report(worker, claim, ok=outcomes % 5 == 0)  # 80% fail
            outcomes += 1
            clock.shift(dt.timedelta(seconds=5))
            assert outcomes <= 20, "the breaker must open at the 20th outcome"
        # 20 outcomes, 16 failed, over 100 s: well inside the 5-minute window.
        assert outcomes == 20
        opened_at = timezone.now()
        assert all(_state("worker", w.pk) == BreakerState.CLOSED for w in workers)

        # While open (2 minutes), pulls hand out only the calm provider's jobs.
        for step in range(11):
            claims = jobs_pull(worker=workers[step], max_jobs=10).claims
            assert claims and {c.provider for c in claims} == {"calm"}
            clock.shift(dt.timedelta(seconds=10))
        assert timezone.now() - opened_at < dt.timedelta(seconds=120)
        assert jobs_pull(worker=workers[0], max_jobs=5, providers=["storm"]).claims == []

        # After the cooldown: half-open, and exactly 3 probe jobs between all pulls.
        clock.move_to(opened_at + dt.timedelta(seconds=121))
        probes = []
        for worker in workers[:4]:
            probes += [c for c in jobs_pull(worker=worker, max_jobs=10).claims if c.provider == "storm"]
        assert len(probes) == 3
        assert _state("provider", "storm") == BreakerState.HALF_OPEN
        by_id = {c.job_id: c for c in probes}
        for claim in probes:
            worker = next(w for w in workers if Job.objects.get(pk=claim.job_id).leased_by_id == w.pk)
            _report(worker, by_id[claim.job_id], ok=True)
        assert _state("provider", "storm") == BreakerState.CLOSED
        # Closed again: storm jobs flow (they have the higher priority).
        assert {c.provider for c in jobs_pull(worker=workers[5], max_jobs=5).claims} == {"storm"}

    path = list(BreakerTransition.objects.filter(scope="provider", key="storm").order_by("at", "id")
                .values_list("from_state", "to_state"))
    assert path == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    changed = [e["data"] for e in events if e["type"] == "breaker.changed"]
    assert [(e["from_state"], e["to_state"]) for e in changed] == path
    assert changed[0]["scope"] == "provider" and changed[0]["key"] == "storm"


def test_a_failed_probe_opens_the_breaker_again(clock):
    provider = make_provider("flaky", breaker_min_outcomes=4, breaker_cooldown_s=30, breaker_probes=2)
    make_jobs(20, provider=provider)
    workers = [make_worker(worker_id=f"f-{i}")[0] for i in range(4)]
    for worker in workers:
        (claim,) = jobs_pull(worker=worker, max_jobs=1).claims
        _report(worker, claim, ok=False)
    assert _state("provider", "flaky") == BreakerState.OPEN
    clock.shift(dt.timedelta(seconds=31))
    claims = jobs_pull(worker=workers[0], max_jobs=10).claims
    assert len(claims) == 2  # the provider's own probe count
    _report(workers[0], claims[0], ok=False)
    assert _state("provider", "flaky") == BreakerState.OPEN
    assert jobs_pull(worker=workers[1], max_jobs=10).claims == []


def test_a_failing_worker_gets_no_jobs_and_a_retry_after(clock, signed, worker_and_secret):
    worker, _ = worker_and_secret
    make_jobs(60, provider=make_provider("maps", breaker_min_outcomes=1000))
    for _ in range(20):
        claim = signed.pull(1).json()["jobs"][0]
        response = signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "failed",
                                               "error": {"code": "crash", "message": "x"}})
        assert response.status_code == 200
        clock.shift(dt.timedelta(seconds=1))
    assert _state("worker", worker.pk) == BreakerState.OPEN
    body = signed.pull(5).json()
    assert body["jobs"] == []
    assert 100 <= body["retry_after_s"] <= 120
    # Another worker still gets jobs: the provider's breaker was not involved.
    other, _ = make_worker(worker_id="w-other")
    assert len(jobs_pull(worker=other, max_jobs=5).claims) == 5


def test_staff_force_open_close_and_reset_are_audited():
    provider = make_provider("maps")
    make_jobs(5, provider=provider)
    worker, _ = make_worker(worker_id="w-f")
    assert breaker_force(scope=BreakerScope.PROVIDER, key="maps", action=BreakerAction.FORCE_OPEN)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=3), tick=False):
        # Forced open stays open past any cooldown.
        assert jobs_pull(worker=worker, max_jobs=5).claims == []
    assert breaker_force(scope=BreakerScope.PROVIDER, key="maps", action=BreakerAction.FORCE_CLOSED)
    assert len(jobs_pull(worker=worker, max_jobs=2).claims) == 2
    assert breaker_reset(scope=BreakerScope.PROVIDER, key="maps")
    assert not Breaker.objects.get(scope="provider", key="maps").forced
    assert list(BreakerTransition.objects.order_by("id").values_list("to_state", flat=True)) == [
        "open", "closed", "closed"]
    assert Job.objects.filter(state=JobState.LEASED).count() == 2


def test_probes_lost_with_their_worker_are_reserved_again_after_a_cooldown(clock):
    provider = make_provider("lost", breaker_min_outcomes=2, breaker_cooldown_s=60, breaker_probes=1)
    make_jobs(10, provider=provider)
    worker, _ = make_worker(worker_id="l-1")
    for _ in range(2):
        (claim,) = jobs_pull(worker=worker, max_jobs=1).claims
        _report(worker, claim, ok=False)
    # The worker breaker does not open on 2 outcomes; the provider's does.
    assert _state("provider", "lost") == BreakerState.OPEN
    clock.shift(dt.timedelta(seconds=61))
    assert len(jobs_pull(worker=worker, max_jobs=5).claims) == 1  # the probe; its worker then vanishes
    clock.shift(dt.timedelta(seconds=30))
    assert jobs_pull(worker=worker, max_jobs=5).claims == []
    clock.shift(dt.timedelta(seconds=31))
    assert len(jobs_pull(worker=worker, max_jobs=5).claims) == 1
    assert _state("provider", "lost") == BreakerState.HALF_OPEN


def test_a_worker_breaker_half_opens_with_three_probes_and_closes_on_their_success(
        clock, signed, worker_and_secret):
    worker, _ = worker_and_secret
    make_jobs(60, provider=make_provider("maps", breaker_min_outcomes=1000))
    for _ in range(20):
        claim = signed.pull(1).json()["jobs"][0]
        signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "failed",
                                    "error": {"code": "crash", "message": "x"}})
    assert _state("worker", worker.pk) == BreakerState.OPEN
    clock.shift(dt.timedelta(seconds=121))
    probes = signed.pull(10).json()["jobs"]
    assert len(probes) == 3 and _state("worker", worker.pk) == BreakerState.HALF_OPEN
    assert signed.pull(10).json()["jobs"] == []  # no more than the probes
    for claim in probes:
        assert signed.report(claim["id"], {"attempt_id": claim["attempt_id"],
                                           "outcome": "succeeded"}).status_code == 200
    assert _state("worker", worker.pk) == BreakerState.CLOSED
    assert len(signed.pull(10).json()["jobs"]) == 10


def test_staff_force_a_provider_breaker_from_admin_and_the_audit_is_read_only(admin_client, admin_user):
    provider = make_provider("maps")
    make_jobs(3, provider=provider)
    worker, _ = make_worker(worker_id="w-adm")
    # Asked first: the page names the provider and what forcing does, and changes nothing.
    page = admin_client.post("/admin/queueing/provider/", {"action": "breaker_force_open",
                                                           "_selected_action": [provider.pk]})
    assert page.status_code == 200 and "Force the breaker of 1 provider open?" in page.text
    assert "no automatic half-open" in page.text and 'name="post" value="yes"' in page.text
    assert not Breaker.objects.filter(key="maps").exists()
    admin_client.post("/admin/queueing/provider/", {"action": "breaker_force_open", "post": "yes",
                                                    "_selected_action": [provider.pk]})
    assert _state("provider", "maps") == BreakerState.OPEN
    assert jobs_pull(worker=worker, max_jobs=3).claims == []
    breaker = Breaker.objects.get(key="maps")
    page = admin_client.post("/admin/queueing/breaker/", {"action": "force_close", "_selected_action": [breaker.pk]})
    assert "Force 1 breaker closed?" in page.text and "provider maps (open)" in page.text
    assert _state("provider", "maps") == BreakerState.OPEN
    admin_client.post("/admin/queueing/breaker/", {"action": "reset", "_selected_action": [breaker.pk]})
    assert _state("provider", "maps") == BreakerState.CLOSED
    assert len(jobs_pull(worker=worker, max_jobs=3).claims) == 3
    audit = list(BreakerTransition.objects.order_by("id"))
    assert [(a.to_state, a.actor_id) for a in audit] == [("open", admin_user.pk), ("closed", admin_user.pk)]
    assert admin_client.get("/admin/queueing/breakertransition/").status_code == 200
    assert admin_client.get(f"/admin/queueing/breakertransition/{audit[0].pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/queueing/breakertransition/{audit[0].pk}/change/",
                             {"reason": "rewritten"}).status_code == 403
    assert BreakerTransition.objects.get(pk=audit[0].pk).reason != "rewritten"


def test_outcome_buckets_older_than_the_longest_window_are_purged_and_newer_ones_kept():
    from queueing.models import BreakerOutcome
    from queueing.services import breaker_outcomes_purge

    make_provider("slow-window", breaker_window_s=900)  # the longest window: 15 minutes
    # A bucket starting 905 s ago still holds outcomes of the last 900 s; one from 915 s ago does not.
    now = timezone.now()
    for age_s in (60, 905, 915, 3600):
        BreakerOutcome.objects.create(scope=BreakerScope.PROVIDER, key="slow-window",
                                      bucket=now - dt.timedelta(seconds=age_s), successes=1)
    assert breaker_outcomes_purge(now=now) == 2
    kept = sorted((now - b).total_seconds() for b in BreakerOutcome.objects.values_list("bucket", flat=True))
    assert kept == [60, 905]
