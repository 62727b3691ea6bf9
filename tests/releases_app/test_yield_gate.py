"""The yield gate: a canary judged by the leads its jobs produce, against the rest of its channel."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.urls import reverse

from releases_app.models import ReleaseAuditEvent, RolloutState
from releases_app.services import rollout_start
from releases_app.tasks import evaluate_rollouts
from tests.factories import make_jobs, make_provider

HOLD_S = 600
_phones = itertools.count(1)


def produce(member, *, jobs: int, leads_per_job: int, provider: str | None = None) -> None:
    """The worker pulls `jobs` jobs and reports each succeeded, with valid, distinct phones."""
    pulled = member.signed.pull(jobs, **({"providers": [provider]} if provider else {})).json()["jobs"]
    assert len(pulled) == jobs
    for job in pulled:
        leads = [{"name": f"Shop {n}", "phone": f"0501{next(_phones):06d}"} for n in range(leads_per_job)]
        body = {"attempt_id": job["attempt_id"], "outcome": "succeeded", "leads": leads}
        assert member.signed.report(job["id"], body).status_code == 200


@pytest.fixture
def half_yield_canary(clock, fleet, stable_on, publish):
    """Canary w-01 on 1.1.0 gets half the leads per job that w-02 on 1.0.0 gets, with no failures."""
    def begin(**gates):
        stable_on("1.0.0")
        workers = fleet(3)
        publish("1.1.0")
        rollout = rollout_start(
            version="1.1.0", channel_name="stable", canary=["w-01"],
            steps=[{"canary": ["w-01"], "hold_s": HOLD_S}, {"percent": 100}],
            gates={"min_attempts": 10, **gates}, actor="tests")
        assert workers[0].update()["reason"] == "canary"
        make_jobs(50)
        produce(workers[1], jobs=25, leads_per_job=4)   # the rest of the channel
        produce(workers[0], jobs=25, leads_per_job=2)   # the canary: valid pages, half the leads
        clock.shift(dt.timedelta(seconds=HOLD_S + 1))
        for member in workers:
            member.heartbeat()
        return rollout, evaluate_rollouts()
    return begin


def test_half_the_leads_per_job_pauses_the_canary_within_one_hold(half_yield_canary, admin_client):
    rollout, results = half_yield_canary()
    assert results == {rollout.pk: "low_yield"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert "leads per succeeded job 2 below 80% of baseline 4" in rollout.state_reason
    checks = rollout.last_gate_result["checks"]
    # The error-rate gate alone is satisfied: no failed attempt on the canary.
    assert checks["error_rate"] == 0.0 and checks["error_rate"] <= checks["allowed_error_rate"]
    assert checks["yield_leads_per_job"] == {"canary": 2.0, "baseline": 4.0}
    assert checks["yield_usable_phone_share"] == {"canary": 1.0, "baseline": 1.0}
    assert rollout.channel.current.version == "1.1.0"  # paused, not rolled back
    assert ReleaseAuditEvent.objects.filter(action="rollout_paused", rollout_id_ref=rollout.pk).exists()
    page = admin_client.get(reverse("admin:releases_app_rollout_change", args=[rollout.pk])).content.decode()
    assert "leads per succeeded job 2.00 vs 4.00" in page


def test_the_same_canary_passes_on_the_error_rate_gate_alone(half_yield_canary):
    rollout, results = half_yield_canary(yield_min_share=0)
    assert results == {rollout.pk: "pass"}
    rollout.refresh_from_db()
    assert (rollout.state, rollout.step_index) == (RolloutState.RUNNING, 1)


def test_yield_action_rollback_rolls_the_canary_back(half_yield_canary):
    rollout, results = half_yield_canary(yield_action="rollback")
    assert results == {rollout.pk: "fail"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "yield low: leads per succeeded job" in rollout.state_reason


def test_too_few_jobs_leave_the_yield_unjudged(half_yield_canary):
    rollout, results = half_yield_canary(yield_min_jobs=30)
    assert results == {rollout.pk: "pass"}
    assert "too few succeeded jobs" in rollout.__class__.objects.get(pk=rollout.pk).last_gate_result[
        "checks"]["yield"]


def test_the_baseline_is_weighed_by_the_canarys_provider_mix(clock, fleet, stable_on, publish):
    """The canary got the lean provider only: judged against the channel on that provider, it passes."""
    stable_on("1.0.0")
    workers = fleet(3)
    publish("1.1.0")
    rollout = rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                            steps=[{"canary": ["w-01"], "hold_s": HOLD_S}, {"percent": 100}],
                            gates={"min_attempts": 10}, actor="tests")
    workers[0].update()
    make_jobs(40, provider=make_provider("maps"))
    make_jobs(50, provider=make_provider("directory"))
    produce(workers[1], jobs=40, leads_per_job=6, provider="maps")        # rich provider, baseline only
    produce(workers[2], jobs=25, leads_per_job=2, provider="directory")   # lean provider
    produce(workers[0], jobs=25, leads_per_job=2, provider="directory")   # the canary: lean provider only
    clock.shift(dt.timedelta(seconds=HOLD_S + 1))
    for member in workers:
        member.heartbeat()
    assert evaluate_rollouts() == {rollout.pk: "pass"}
    checks = rollout.__class__.objects.get(pk=rollout.pk).last_gate_result["checks"]
    # Unweighed, the baseline would be (40 x 6 + 25 x 2) / 65 = 4.5 leads per job, and the canary's 2 low.
    assert checks["yield_leads_per_job"] == {"canary": 2.0, "baseline": 2.0}
    assert checks["yield_providers"] == ["directory"]
