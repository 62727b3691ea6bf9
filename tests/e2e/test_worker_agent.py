"""Acceptance of the supervising agent: the worker really runs what it installs.

Real processes all the way: the live worker-API server, five `python -m worker_client.agent`
processes, each running the reference worker release it installed (built by `make worker-release`)
as a child process. v2 is built from a copy of the package with one line added, so its heartbeats
carry a metric only v2's code sends: a heartbeat that reports 2.0.0 proves that v2's code runs.
docs/RELEASES.md, "The supervising agent".
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from queueing.models import AttemptState, Job, JobAttempt, JobState
from releases_app.models import Channel, Rollout, RolloutState
from releases_app.services import (
    channel_rollback,
    release_publish,
    rollout_gate_evaluate,
    rollout_promote,
    rollout_start,
)
from tests.e2e.agents import AgentProcess, assert_crash_loop_rolled_back, release_build
from tests.e2e.conftest import wait_until
from tests.factories import make_jobs, make_provider, make_worker
from workers_mgmt.models import Worker, WorkerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEARTBEAT_S = 2
BUDGET_S = 2 * HEARTBEAT_S
AGENTS = 5
JOBS = 200
V2_MARK = "v2_code_ran"
# v2's code: one more counter, so every heartbeat metric of v2 names it and v1's never does.
V2_PATCH = f'WorkerCounters.FIELDS = (*WorkerCounters.FIELDS, "{V2_MARK}")\n'
# v3's code passes its self-test (it loads and signs a heartbeat) but exits as soon as it should work.
V3_PATCH = "def _exit_at_start(self, duration=None):\n    raise SystemExit(3)\n\n\nWorker.run = _exit_at_start\n"
WORKER_ARGS = ["--batch", "1", "--concurrency", "1", "--leads", "1-3", "--delay", "0.2-0.4",
               "--failure-rate", "0", "--log-level", "WARNING"]


def _publish(path: Path, version: str) -> None:
    with open(path, "rb") as artifact:
        release = release_publish(version=version, fileobj=artifact, filename=path.name, actor="e2e")
    assert release.state == "ready", release.self_test_report


def _channel_on(version: str) -> None:
    rollout_start(version=version, channel_name="stable", steps=[{"percent": 100}], actor="e2e")
    rollout_promote(channel_name="stable", actor="e2e")


def _reported(names: set[str]) -> dict[str, tuple[str, bool]]:
    """Each worker's last heartbeat: (version, whether v2's code sent it)."""
    return {pk: (version, V2_MARK in (metrics or {})) for pk, version, metrics in
            Worker.objects.filter(pk__in=names).values_list("pk", "reported_version", "last_metrics")}


def _runs(names: set[str], version: str) -> bool:
    return set(_reported(names).values()) == {(version, version == "2.0.0")}


def _elapsed(started: float, names: set[str], version: str, agents) -> float:
    assert wait_until(lambda: _runs(names, version), timeout=60, interval=0.02), (
        version, _reported(names), [agent.log() for agent in agents][:2])
    return time.monotonic() - started


@pytest.fixture
def agents_started(worker_api_url, worker_api_media, tmp_path):
    """start(count, **options) -> running agents, each with a worker of channel stable; all stopped after."""
    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": HEARTBEAT_S,
                                                          "update_check_interval_s": 3600,
                                                          "poll_interval_s": 1})
    started: list[AgentProcess] = []

    def start(count: int, *, prefix: str, agent_args: list[str] | None = None) -> list[AgentProcess]:
        for index in range(count):
            _, issued = make_worker(worker_id=f"{prefix}-{index}", channel="stable", rate_limit_per_min=100_000)
            started.append(AgentProcess(worker_api_url, issued, tmp_path / issued.worker_id,
                                        agent_args=agent_args, worker_args=WORKER_ARGS))
        return started

    yield start
    codes = [agent.stop() for agent in started]
    assert codes == [0] * len(started), [agent.log() for agent in started]


def test_agents_switch_to_v2_code_and_back_without_losing_or_repeating_a_job(agents_started, tmp_path):
    _publish(release_build("1.0.0", tmp_path), "1.0.0")
    _publish(release_build("2.0.0", tmp_path, patch=V2_PATCH), "2.0.0")
    _channel_on("1.0.0")
    agents = agents_started(AGENTS, prefix="agent")
    everyone = {agent.worker_id for agent in agents}
    # Each agent installs the channel's release from the portal and runs it.
    assert wait_until(lambda: _runs(everyone, "1.0.0"), timeout=90), (_reported(everyone), agents[0].log())
    jobs = make_jobs(JOBS, provider=make_provider("agent-maps"))

    canary = agents[0].worker_id
    started = time.monotonic()
    rollout_start(version="2.0.0", channel_name="stable", canary=[canary], actor="e2e",
                  steps=[{"canary": [canary], "hold_s": 1800}, {"percent": 100, "hold_s": 1800}])
    canary_s = _elapsed(started, {canary}, "2.0.0", agents)
    assert _runs(everyone - {canary}, "1.0.0")

    started = time.monotonic()
    rollout_promote(channel_name="stable", actor="e2e")
    promote_s = _elapsed(started, everyone, "2.0.0", agents)

    started = time.monotonic()
    channel_rollback(channel_name="stable", actor="e2e")
    rollback_s = _elapsed(started, everyone, "1.0.0", agents)

    print(f"\nagent switches, heartbeat {HEARTBEAT_S} s, {AGENTS} agents: canary {canary_s:.2f} s, "
          f"promote {promote_s:.2f} s, rollback {rollback_s:.2f} s (budget {BUDGET_S} s)")
    assert rollback_s <= BUDGET_S, rollback_s
    # The rollback went back to the kept folder: no download, and the agent's own state says so.
    assert all(agent.state().get("running") == "1.0.0" for agent in agents)

    ids = [job.pk for job in jobs]
    assert wait_until(lambda: Job.objects.filter(pk__in=ids, state=JobState.SUCCEEDED).count() == JOBS,
                      timeout=120), Job.objects.filter(pk__in=ids).values("state").annotate(n=Count("id"))
    finished = (JobAttempt.objects.filter(job_id__in=ids)
                .values("job_id").annotate(succeeded=Count("id", filter=Q(state=AttemptState.SUCCEEDED))))
    assert sorted(row["succeeded"] for row in finished) == [1] * JOBS
    switched = JobAttempt.objects.filter(job_id__in=ids, state=AttemptState.RELEASED).count()
    print(f"{JOBS} jobs finished exactly once; {switched} leases released at a switch")


def test_a_version_that_exits_at_start_is_rolled_back_and_stops_its_rollout(agents_started, tmp_path):
    _publish(release_build("2.0.0", tmp_path, patch=V2_PATCH), "2.0.0")
    _publish(release_build("3.0.0", tmp_path, patch=V3_PATCH), "3.0.0")
    _channel_on("2.0.0")
    (agent,) = agents_started(1, prefix="crash", agent_args=["--crash-limit", "2", "--crash-window", "60"])
    names = {agent.worker_id}
    assert wait_until(lambda: _runs(names, "2.0.0"), timeout=90), (_reported(names), agent.log())

    rollout = rollout_start(version="3.0.0", channel_name="stable", canary=[agent.worker_id], actor="e2e",
                            steps=[{"canary": [agent.worker_id], "hold_s": 0}, {"percent": 100}])
    assert_crash_loop_rolled_back(agent, version="3.0.0", to_version="2.0.0", timeout=60)
    # v2's code runs again, heartbeating.
    assert wait_until(lambda: _runs(names, "2.0.0"), timeout=30), (_reported(names), agent.log())
    assert agent.state()["quarantine"]["3.0.0"]["reason"].startswith("crash loop")

    # The gates judge the step once its hold is over (moved back rather than waited for).
    Rollout.objects.filter(pk=rollout.pk).update(step_started_at=timezone.now() - dt.timedelta(minutes=10))
    result = rollout_gate_evaluate(rollout_id=rollout.pk)
    assert result is not None and result.outcome == "fail", result
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert Channel.objects.get(name="stable").current.version == "2.0.0"
    # It never tries v3 again: still v2, and v3 was started only in its crash loop.
    time.sleep(2 * HEARTBEAT_S)
    assert _runs(names, "2.0.0") and agent.state()["running"] == "2.0.0"
