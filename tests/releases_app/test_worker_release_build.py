"""The reference worker as a release: `make worker-release` builds what `release_publish` accepts, and
the supervising agent refuses a version whose launch self-test fails, reporting it to a live portal."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from releases_app.models import Release, WorkerReleaseStatus
from releases_app.signing import signing_keys
from tests.factories import make_worker
from worker_client.agent import Agent, AgentSettings, AgentState
from worker_client.client import LeadOpsClient
from worker_client.release import build
from worker_client.updater import trusted_keys_from
from workers_mgmt.models import Worker, WorkerConfig

WORKER_CLIENT = Path(__file__).resolve().parents[2] / "worker_client"


def test_the_built_reference_worker_is_accepted_by_release_publish(publish):
    release = publish("2.3.4", build("2.3.4"), filename="leadops-worker-2.3.4.tar.gz")
    assert release.state == "ready", release.self_test_report
    assert release.archive_format == "tar.gz"


def _broken_build(version: str, tmp_path: Path) -> bytes:
    """A release whose entrypoint exits at once, before it could sign anything."""
    source = tmp_path / "broken" / "worker_client"
    shutil.copytree(WORKER_CLIENT, source, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    with open(source / "__main__.py", "a") as module:
        module.write("\n\ndef main(argv=None):\n    raise SystemExit(4)\n")
    return build(version, source=source)


@pytest.mark.real_clock  # the agent and its children sign with the real clock
@pytest.mark.django_db(transaction=True)
def test_a_version_failing_its_launch_self_test_is_never_run(live_server, publish, tmp_path):
    from releases_app.services import rollout_promote, rollout_start

    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": 1})
    publish("1.0.0", build("1.0.0"))
    publish("1.1.0", _broken_build("1.1.0", tmp_path))
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    _, issued = make_worker(worker_id="w-agent", channel="stable", rate_limit_per_min=100_000)
    credentials = tmp_path / "credentials.json"
    credentials.write_text(f'{{"worker_id": "w-agent", "key_id": "{issued.key_id}", "secret": "{issued.secret}"}}')
    key = signing_keys()[0]
    root = tmp_path / "agent"
    client = LeadOpsClient(live_server.url, issued.worker_id, issued.key_id, issued.secret)
    agent = Agent(client, root=root, trusted_keys=trusted_keys_from({key.key_id: key.public_b64}),
                  credentials_file=credentials, worker_args=["--leads", "1", "--log-level", "WARNING"],
                  settings=AgentSettings(check_interval_s=3600))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()

    def reported(version: str) -> bool:
        return Worker.objects.filter(pk="w-agent", reported_version=version).exists()

    def wait(predicate, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.1)
        return predicate()

    try:
        assert wait(lambda: reported("1.0.0")), Release.objects.values_list("version", "state")
        rollout_start(version="1.1.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
        assert wait(lambda: WorkerReleaseStatus.objects.filter(worker_id="w-agent", version="1.1.0",
                                                               rolled_back_at__isnull=False).exists())
    finally:
        agent.stop()
        runner.join(timeout=60)
        client.close()
    status = WorkerReleaseStatus.objects.get(worker_id="w-agent", version="1.1.0")
    assert status.self_test_ok is False and status.failed
    assert status.last_details["to_version"] == "1.0.0" and status.last_details["exit_code"] == 4
    state = AgentState.load(root / "agent.json")
    assert state.running == "1.0.0" and state.quarantine["1.1.0"]["reason"] == "self_test failed"
    assert state.self_tests["1.0.0"]["ok"] and not state.self_tests["1.1.0"]["ok"]
    # 1.0.0's code ran all along and said so in its heartbeats, with its own launch self-test.
    worker = Worker.objects.get(pk="w-agent")
    assert worker.reported_version == "1.0.0"
    assert worker.last_self_test["version"] == "1.0.0" and worker.last_self_test["ok"] is True
