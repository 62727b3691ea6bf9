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


# --- the fleet as it is: offline workers, re-rollouts, the hold the fleet needs ----------------------
# (docs/RELEASES.md, "Health gates")


def _gate(rollout) -> dict:
    from releases_app.services import rollout_gate_check

    return rollout_gate_check(rollout=Rollout.objects.get(pk=rollout.pk)).as_dict()


def test_an_offline_worker_neither_fails_nor_stalls_a_step(clock, fleet, stable_on, publish):
    stable_on("1.0.0")
    workers = fleet(4)
    for member in workers[:3]:
        member.heartbeat()  # w-04 was switched off long ago: never heard from
    publish("1.1.0")
    rollout = start(canary=(), min_attempts=0, steps=[{"percent": 100, "hold_s": HOLD_S}])
    assert rollout.targets.count() == 4
    for member in workers[:3]:
        member.update()
    assert after_hold(clock, workers[:3]) == {rollout.pk: "pass"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.DONE
    assert rollout.last_gate_result["checks"]["offline"] == ["w-04"]
    assert rollout.last_gate_result["checks"]["installed"] == 3


def test_a_count_step_reaches_an_online_worker_before_offline_ones(clock, fleet, stable_on, publish):
    from releases_app.services import worker_rank_key

    stable_on("1.0.0")
    workers = fleet(10)
    publish("1.1.0")
    rollout = start(canary=(), steps=[{"count": 0, "hold_s": HOLD_S}, {"count": 1}, {"count": 3}])
    # The one online worker is the last in the rollout's hash order.
    by_rank = sorted(workers, key=lambda member: worker_rank_key(rollout.salt, member.worker_id))
    by_rank[-1].heartbeat()
    rollout_promote(channel_name="stable", actor="tests")
    assert list(rollout.targets.values_list("worker_id", flat=True)) == [by_rank[-1].worker_id]
    rollout_promote(channel_name="stable", actor="tests")
    # Then the offline ones, in the rollout's hash order, when the online ones are not enough.
    assert set(rollout.targets.values_list("worker_id", flat=True)) == {
        by_rank[-1].worker_id, by_rank[0].worker_id, by_rank[1].worker_id}


def test_an_online_worker_that_did_not_install_pauses_the_step(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=0)
    assert after_hold(clock, workers) == {rollout.pk: "inconclusive"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert "not installed yet on w-01" in rollout.state_reason


def test_a_step_whose_targets_are_all_offline_pauses_rather_than_rolls_back(clock, rollout_of):
    workers, rollout = rollout_of(3, min_attempts=0)  # the canary w-01 never sends a heartbeat
    assert after_hold(clock, workers[1:]) == {rollout.pk: "inconclusive"}
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED
    assert "no worker the rollout reached is online" in rollout.state_reason
    assert Channel.objects.get(name="stable").current.version == "1.1.0"


def test_an_install_from_an_earlier_rollout_of_the_same_version_does_not_count(clock, rollout_of):
    from releases_app.services import channel_rollback

    workers, _first = rollout_of(3, min_attempts=0)
    canary = workers[0]
    canary.update()
    channel_rollback(channel_name="stable", actor="tests")
    canary.update()
    assert canary.version == "1.0.0"
    clock.shift(dt.timedelta(seconds=5))
    again = start(min_attempts=0)
    for member in workers:
        member.heartbeat()
    result = _gate(again)
    assert result["outcome"] == "inconclusive"
    assert result["reasons"] == ["not installed yet on w-01"]
    canary.update()
    canary.heartbeat()
    assert _gate(again)["outcome"] == "pass"


def test_a_self_test_that_failed_before_the_worker_was_fixed_does_not_fail_the_next_rollout(clock, rollout_of):
    from releases_app.services import channel_rollback

    workers, first = rollout_of(3, min_attempts=0)
    canary = workers[0]
    canary.report("1.1.0", "downloaded")
    canary.report("1.1.0", "installed")
    canary.report("1.1.0", "self_test", ok=False, details={"error": "no chromium"})
    canary.report("1.1.0", "rolled_back", details={"to_version": "1.0.0"})
    for member in workers:
        member.heartbeat()
    assert _gate(first)["outcome"] == "fail"
    channel_rollback(channel_name="stable", actor="tests")
    clock.shift(dt.timedelta(seconds=5))
    again = start(min_attempts=0)
    canary.update()  # chromium installed on the machine meanwhile: every stage passes
    for member in workers:
        member.heartbeat()
    assert _gate(again) == {**_gate(again), "outcome": "pass", "reasons": []}


def test_the_gates_wait_until_the_fleet_could_install_whatever_the_hold(clock, rollout_of):
    from releases_app.services.base import min_hold_s
    from workers_mgmt.models import WorkerConfig

    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": 300})
    floor = min_hold_s(300)
    assert floor == 2 * 300 + 60 > HOLD_S
    workers, rollout = rollout_of(3, min_attempts=0)
    workers[0].update()
    clock.shift(dt.timedelta(seconds=HOLD_S + 1))  # the step's own hold is over ...
    for member in workers:
        member.heartbeat()
    assert evaluate_rollouts() == {}  # ... but a heartbeat interval of 300 s needs 660 s
    clock.shift(dt.timedelta(seconds=floor - HOLD_S))
    for member in workers:
        member.heartbeat()
    assert evaluate_rollouts() == {rollout.pk: "pass"}
