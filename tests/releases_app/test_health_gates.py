"""Health gates after each step's hold: pass -> next step or approval, fail -> roll back, no data -> pause."""

from __future__ import annotations

import datetime as dt

import pytest

from releases_app.models import Channel, ReleaseAuditEvent, Rollout, RolloutState
from releases_app.services import rollout_promote, rollout_start
from releases_app.tasks import evaluate_rollouts
from tests.factories import make_jobs

HOLD_S = 600


def work(member, *, succeeded: int = 0, failed: int = 0) -> None:
    """The worker pulls and reports jobs through the real protocol."""
    jobs = member.signed.pull(succeeded + failed).json()["jobs"]
    assert len(jobs) == succeeded + failed
    for index, job in enumerate(jobs):
        if index < failed:
            body = {"attempt_id": job["attempt_id"], "outcome": "failed", "leads": [],
                    "error": {"code": "blocked", "message": "captcha", "retryable": True}}
        else:
            body = {"attempt_id": job["attempt_id"], "outcome": "succeeded", "leads": []}
        assert member.signed.report(job["id"], body).status_code == 200


def start(*, canary=("w-01",), approve=False, min_attempts=10, steps=None):
    return rollout_start(
        version="1.1.0", channel_name="stable", canary=list(canary),
        steps=steps or [{"canary": list(canary), "hold_s": HOLD_S, "approve": approve}, {"percent": 100}],
        gates={"min_attempts": min_attempts}, actor="tests")


@pytest.fixture
def rollout_of(fleet, stable_on, publish):
    """`size` workers on 1.0.0, then the rollout of 1.1.0 started with `start(**options)`."""
    def begin(size: int, **options):
        stable_on("1.0.0")
        workers = fleet(size)
        publish("1.1.0")
        return workers, start(**options)
    return begin


def after_hold(clock, workers, **self_tests) -> dict:
    clock.shift(dt.timedelta(seconds=HOLD_S + 1))
    for member in workers:
        member.heartbeat(self_test=self_tests.get(member.worker_id))
    return evaluate_rollouts()


def test_canary_error_rate_above_the_gate_rolls_back_by_itself(clock, rollout_of):
    workers, rollout = rollout_of(4)
    canary = workers[0]
    assert canary.update()["reason"] == "canary"
    make_jobs(40)
    work(workers[1], succeeded=10)          # the previous release: no failures
    work(canary, succeeded=4, failed=6)     # the new one: 60 % failed

    assert after_hold(clock, workers) == {rollout.pk: "fail"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "job error rate 60.0% above 2.0%" in rollout.state_reason
    channel = Channel.objects.get(name="stable")
    assert channel.current.version == "1.0.0"
    assert channel.manifest["signed"]["release"]["version"] == "1.0.0"
    answer = canary.update()
    assert (answer["reason"], canary.version) == ("channel", "1.0.0")
    audit = ReleaseAuditEvent.objects.get(action="rolled_back")
    assert audit.actor == "system" and "health gate failed" in audit.detail["reason"]


def test_error_rate_within_one_and_a_half_times_the_previous_release_passes(clock, rollout_of):
    workers, rollout = rollout_of(4)
    workers[0].update()
    make_jobs(60)
    work(workers[1], succeeded=16, failed=4)   # previous release: 20 %
    work(workers[0], succeeded=15, failed=5)   # new: 25 % <= 1.5 x 20 %
    assert after_hold(clock, workers) == {rollout.pk: "pass"}
    rollout.refresh_from_db()
    assert (rollout.state, rollout.step_index) == (RolloutState.RUNNING, 1)
    assert rollout.targets.count() == 4


def test_too_little_data_pauses_the_rollout(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=20)
    workers[0].update()
    make_jobs(5)
    work(workers[0], succeeded=5)
    assert after_hold(clock, workers) == {rollout.pk: "inconclusive"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert "only 5 finished attempts" in rollout.state_reason
    assert Channel.objects.get(name="stable").current.version == "1.1.0"


def test_passing_step_with_approve_waits_then_promote_moves_on(clock, rollout_of):
    workers, rollout = rollout_of(3, approve=True, min_attempts=0)
    workers[0].update()
    assert after_hold(clock, workers) == {rollout.pk: "pass"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.WAITING_APPROVAL
    assert evaluate_rollouts() == {}  # nothing moves without a human
    rollout_promote(channel_name="stable", actor="staff")
    rollout.refresh_from_db()
    assert (rollout.state, rollout.step_index) == (RolloutState.RUNNING, 1)


def test_last_step_passing_finishes_the_rollout(clock, rollout_of):
    workers, rollout = rollout_of(2, min_attempts=0, steps=[{"percent": 100, "hold_s": HOLD_S}])
    for member in workers:
        member.update()
    assert after_hold(clock, workers) == {rollout.pk: "pass"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.DONE
    assert Channel.objects.get(name="stable").manifest["signed"]["rollout"] is None


def test_nothing_is_judged_before_the_hold_is_over(clock, rollout_of):
    rollout_of(2, min_attempts=0)
    clock.shift(dt.timedelta(seconds=HOLD_S - 5))
    assert evaluate_rollouts() == {}


def test_failing_heartbeat_self_test_rolls_back(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=0)
    workers[0].update()
    bad = {"w-01": {"ok": False, "version": "1.1.0", "error": "chromium did not start"}}
    assert after_hold(clock, workers, **bad) == {rollout.pk: "fail"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "self-test failing on w-01" in rollout.state_reason


def test_failed_install_report_rolls_back(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=0)
    workers[0].report("1.1.0", "installed", ok=False, details={"error": "disk full"})
    assert after_hold(clock, workers) == {rollout.pk: "fail"}
    rollout.refresh_from_db()
    assert "install or self-test failed on w-01" in rollout.state_reason


def test_silent_canary_fails_the_gate(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=0)
    workers[0].update()
    clock.shift(dt.timedelta(seconds=HOLD_S + 1))
    for member in workers[1:]:
        member.heartbeat()
    assert evaluate_rollouts() == {rollout.pk: "fail"}
    assert "heartbeat late from w-01" in Rollout.objects.get(pk=rollout.pk).state_reason
