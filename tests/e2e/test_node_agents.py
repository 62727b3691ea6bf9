"""Acceptance of the Node agent package (agents/node/): three Node agents against the live portal.

Real processes all the way: the worker-API server, three `node agents/node/bin/agent.mjs` processes,
each running the release it installed from the portal (built by the package's own artifact script,
`npm run artifact`) as a child `node` process, with a provider plug-in written here. The jobs finish
exactly once through the exchange; one worker's key is rotated by push without a failed request; a
release goes to one canary and is rolled back, each agent reporting the version it runs.
docs/RELEASES.md, "The Node agent".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from django.db.models import Count, Q

from queueing.models import AttemptEvidence, AttemptState, Job, JobAttempt, JobState
from releases_app.models import WorkerReleaseStatus
from releases_app.services import channel_rollback, release_publish, rollout_promote, rollout_start
from tests.e2e.agents import (
    AgentFiles,
    agent_stop,
    assert_crash_loop_rolled_back,
    credentials_file,
    trust_key_argument,
)
from tests.e2e.conftest import wait_until
from tests.e2e.servers import BASE_DIR
from tests.factories import make_jobs, make_provider, make_worker
from tests.node import require_node
from workers_mgmt.models import CredentialEvent, CredentialState, Worker, WorkerConfig, WorkerCredential
from workers_mgmt.services import credential_rotate

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACKAGE = BASE_DIR / "agents" / "node"
HEARTBEAT_S = 1
AGENTS = 3
JOBS = 150
# The provider plug-in a worker author writes: leads from the job's payload, one in seven jobs blocked
# on its first attempt (with a screenshot the worker uploads as evidence).
PROVIDER = """
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");
export default {
  name: "node-maps",
  async scrape(job, { log }) {
    log(`query ${job.payload.query} in ${job.payload.city}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    if (job.id % 7 === 0 && job.attempt === 1) {
      const error = new Error("captcha on the listing page");
      Object.assign(error, { name: "BlockedError", code: "captcha_required", retryable: true, screenshot: PNG });
      throw error;
    }
    const phone = "05" + String(10000000 + job.id * 7919 % 89999999).padStart(8, "0");
    return [{ name: `Node cafe ${job.id}`, phone, city: job.payload.city }];
  },
};
"""


def artifact_build(version: str, out: Path, *, source: Path = PACKAGE) -> Path:
    """What `npm run artifact -- --version V --out DIR` runs, called without npm."""
    done = subprocess.run(["node", "scripts/artifact.mjs", "--version", version, "--out", str(out),
                           "--source", str(source)], cwd=PACKAGE, capture_output=True, text=True, check=True,
                          timeout=60)
    return Path(json.loads(done.stdout)["path"])


class NodeAgent(AgentFiles):
    """`node agents/node/bin/agent.mjs` for one worker, its output in `<root>/agent.log`."""

    log_tail = 3000

    def __init__(self, url: str, issued, root: Path, provider: Path, agent_args: tuple[str, ...] = ()) -> None:
        self.worker_id = issued.worker_id
        self.root = root
        self.credentials = credentials_file(root, issued)
        self.log_path = root / "agent.log"
        command = ["node", str(PACKAGE / "bin" / "agent.mjs"), "--url", url, "--install-dir", str(root),
                   "--trust-key", trust_key_argument(), "--credentials-file", str(self.credentials),
                   "--stop-timeout", "20", *agent_args, "--", "--provider", str(provider), "--batch", "3", "--concurrency", "3",
                   "--log-level", "warn"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True, env={**os.environ, "NODE_OPTIONS": ""})

    def key_id(self) -> str:
        return json.loads(self.credentials.read_text())["key_id"]

    def stop(self, timeout: float = 40) -> int:
        return agent_stop(self.process, timeout=timeout)


@pytest.fixture
def fleet(worker_api_url, worker_api_media, tmp_path):
    """start(count, prefix, agent_args) -> running Node agents of channel stable; all stopped after (exit 0)."""
    require_node()
    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": HEARTBEAT_S, "poll_interval_s": 1,
                                                          "update_check_interval_s": 3600})
    provider = tmp_path / "provider.mjs"
    provider.write_text(PROVIDER)
    started: list[NodeAgent] = []

    def start(count: int, prefix: str, agent_args: tuple[str, ...] = ()) -> list[NodeAgent]:
        for index in range(count):
            _, issued = make_worker(worker_id=f"{prefix}-{index}", channel="stable", rate_limit_per_min=100_000)
            started.append(NodeAgent(worker_api_url, issued, tmp_path / issued.worker_id, provider, agent_args))
        return list(started)

    yield start
    codes = [agent.stop() for agent in started]
    assert codes == [0] * len(started), [agent.log() for agent in started]
    # A stopped fleet holds no lease.
    assert not Job.objects.filter(state=JobState.LEASED).exists()


def _reported(names: set[str]) -> dict[str, str]:
    return dict(Worker.objects.filter(pk__in=names).values_list("pk", "reported_version"))


def _runs(agents: list[NodeAgent], version: str) -> bool:
    """Each worker's heartbeat names `version` and its agent's own state says it runs it."""
    names = {agent.worker_id for agent in agents}
    return (set(_reported(names).values()) == {version}
            and all(agent.state().get("running") == version for agent in agents))


def _channel_on(version: str) -> None:
    rollout_start(version=version, channel_name="stable", steps=[{"percent": 100}], actor="e2e")
    rollout_promote(channel_name="stable", actor="e2e")


def _publish(path: Path, version: str) -> None:
    with open(path, "rb") as artifact:
        release = release_publish(version=version, fileobj=artifact, filename=path.name, actor="e2e")
    assert release.state == "ready", release.self_test_report
    assert release.entrypoint == "bin/worker.mjs" and release.node_version, release


def test_three_node_agents_work_rotate_and_follow_a_canary_and_its_rollback(fleet, tmp_path):
    _publish(artifact_build("1.0.0", tmp_path / "dist"), "1.0.0")
    _publish(artifact_build("2.0.0", tmp_path / "dist"), "2.0.0")
    _channel_on("1.0.0")
    agents = fleet(AGENTS, "node")
    everyone = {agent.worker_id for agent in agents}
    # Each agent installs the channel's release from the portal and runs it.
    assert wait_until(lambda: _runs(agents, "1.0.0"), timeout=45), (_reported(everyone), agents[0].log())
    jobs = make_jobs(JOBS, provider=make_provider("node-maps", backoff_base_s=1, backoff_cap_s=1))
    ids = [job.pk for job in jobs]

    # A key rotation by push, while the fleet works: no request of that worker fails.
    rotated = agents[1]
    old_key = rotated.key_id()
    new = credential_rotate(worker=Worker.objects.get(pk=rotated.worker_id), actor="e2e")

    def promoted() -> bool:
        return (rotated.key_id() == new.key_id
                and WorkerCredential.objects.filter(key_id=new.key_id, state=CredentialState.CURRENT).exists())

    assert wait_until(promoted, timeout=30), rotated.log()

    # While the queue drains: a canary, only agent 0 switches to 2.0.0; then the rollback brings it back.
    canary = agents[0]
    started = time.monotonic()
    rollout_start(version="2.0.0", channel_name="stable", canary=[canary.worker_id], actor="e2e",
                  steps=[{"canary": [canary.worker_id], "hold_s": 1800}, {"percent": 100, "hold_s": 1800}])
    assert wait_until(lambda: _runs([canary], "2.0.0"), timeout=30), (_reported(everyone), canary.log())
    canary_s = time.monotonic() - started
    assert _runs(agents[1:], "1.0.0"), _reported(everyone)
    stages = set(WorkerReleaseStatus.objects.filter(worker_id=canary.worker_id, version="2.0.0")
                 .values_list("install_ok", "self_test_ok"))
    assert stages == {(True, True)}, stages
    started = time.monotonic()
    channel_rollback(channel_name="stable", actor="e2e")
    assert wait_until(lambda: _runs(agents, "1.0.0"), timeout=30), (_reported(everyone), canary.log())
    rollback_s = time.monotonic() - started
    print(f"\nNode agents, heartbeat {HEARTBEAT_S} s: canary {canary_s:.2f} s (download, self-test, switch), "
          f"rollback {rollback_s:.2f} s (kept folder)")
    left = Job.objects.filter(pk__in=ids).exclude(state=JobState.SUCCEEDED).count()
    print(f"{left} of {JOBS} jobs still to do after the canary and the rollback")

    assert wait_until(lambda: Job.objects.filter(pk__in=ids, state=JobState.SUCCEEDED).count() == JOBS,
                      timeout=60), Job.objects.filter(pk__in=ids).values("state").annotate(n=Count("id"))
    time.sleep(HEARTBEAT_S + 0.5)  # one more heartbeat carries the counters of the rotated worker
    metrics = Worker.objects.get(pk=rotated.worker_id).last_metrics
    assert metrics["failed_requests"] == 0 and metrics["requests"] > 5, metrics
    assert WorkerCredential.objects.get(key_id=old_key).state == CredentialState.PREVIOUS
    assert not CredentialEvent.objects.filter(kind="auth_failed", worker_id__in=everyone).exists()

    # Exactly once: one succeeded attempt per job; the blocked first attempts left their screenshot.
    finished = (JobAttempt.objects.filter(job_id__in=ids).values("job_id")
                .annotate(succeeded=Count("id", filter=Q(state=AttemptState.SUCCEEDED))))
    assert sorted(row["succeeded"] for row in finished) == [1] * JOBS
    blocked = [pk for pk in ids if pk % 7 == 0]
    assert JobAttempt.objects.filter(job_id__in=blocked, number=1, state=AttemptState.FAILED).count() == len(blocked)
    assert AttemptEvidence.objects.filter(attempt__job_id__in=blocked).count() == len(blocked)
    released = JobAttempt.objects.filter(job_id__in=ids, state=AttemptState.RELEASED).count()
    print(f"{JOBS} jobs finished exactly once; {released} leases released at a switch")


def test_a_node_version_that_exits_at_start_is_rolled_back_and_quarantined(fleet, tmp_path):
    # 3.0.0 passes its self-test (it loads and signs a heartbeat) but exits as soon as it should work.
    source = tmp_path / "src-3.0.0"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("dist", "test", "test-support"))
    entry = source / "bin" / "worker.mjs"
    lines = entry.read_text().split("\n")
    lines.insert(1, 'if (!process.argv.includes("--self-test")) process.exit(3);')
    entry.write_text("\n".join(lines))
    _publish(artifact_build("2.0.0", tmp_path / "dist"), "2.0.0")
    _publish(artifact_build("3.0.0", tmp_path / "dist", source=source), "3.0.0")
    _channel_on("2.0.0")
    (agent,) = fleet(1, "node-crash", ("--crash-limit", "2", "--crash-window", "60"))
    assert wait_until(lambda: _runs([agent], "2.0.0"), timeout=45), agent.log()

    rollout_start(version="3.0.0", channel_name="stable", canary=[agent.worker_id], actor="e2e",
                  steps=[{"canary": [agent.worker_id], "hold_s": 0}, {"percent": 100}])
    assert_crash_loop_rolled_back(agent, version="3.0.0", to_version="2.0.0", timeout=30)
    assert wait_until(lambda: _runs([agent], "2.0.0"), timeout=20), agent.log()
    assert agent.state()["quarantine"]["3.0.0"]["reason"].startswith("crash loop")
    # The portal still names 3.0.0 for this canary; the agent does not start it again.
    time.sleep(3 * HEARTBEAT_S)
    assert _runs([agent], "2.0.0"), agent.log()


def test_the_package_client_verifies_the_portals_manifests_and_resumes_a_download(worker_api_url, worker_api_media,
                                                                                 tmp_path):
    require_node()
    _publish(artifact_build("1.0.0", tmp_path / "dist"), "1.0.0")
    _channel_on("1.0.0")
    _, issued = make_worker(worker_id="node-calls", channel="stable")
    url = worker_api_url
    done = subprocess.run(["node", str(Path(__file__).with_name("node_package_calls.mjs"))], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "LEADOPS_URL": url, "WORKER_ID": issued.worker_id,
                               "KEY_ID": issued.key_id, "SECRET": issued.secret, "TRUST": trust_key_argument()})
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    size = answer.pop("size")
    assert answer == {"channel": "stable", "latest": "1.0.0", "sequence": answer["sequence"], "target": "1.0.0",
                      "unsigned_status": 401, "resumed_bytes": size - 100, "sha_ok": True, "failed_requests": 0}
    status = WorkerReleaseStatus.objects.get(worker_id="node-calls", version="1.0.0")
    assert status.last_stage == "downloaded" and status.last_ok
