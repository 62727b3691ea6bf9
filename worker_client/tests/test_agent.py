"""The supervising agent's own parts, without a portal: its state file, crash-loop rule, the release
build and the version a release reports, and a crash loop rolled back with real child processes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path

from worker_client.agent import Agent, AgentSettings, AgentState
from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.release import build
from worker_client.tests.fake_portal import BASE_URL, FakePortal


def test_state_survives_a_restart_and_a_torn_file_reads_as_empty(tmp_path):
    path = tmp_path / "agent.json"
    state = AgentState(running="2.0.0", last_good="1.0.0", switched_at=100.0, crashes=[101.0],
                       quarantine={"3.0.0": {"sha256": "ab", "reason": "crash loop", "at": 99.0}})
    state.save(path)
    assert AgentState.load(path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["agent.json"]  # no temporary file left behind
    path.write_text('{"running": "2.0')
    assert AgentState.load(path) == AgentState()


def test_crash_loop_means_more_than_the_limit_within_the_window_after_the_switch():
    state = AgentState(switched_at=1000.0, crashes=[1001.0, 1002.0])
    assert not state.crash_loop(limit=2, window_s=60)
    state.crashes.append(1003.0)
    assert state.crash_loop(limit=2, window_s=60)
    # Crashes long after the switch are not the new version's start failing.
    assert not AgentState(switched_at=1000.0, crashes=[1100.0, 1101.0, 1102.0]).crash_loop(limit=2, window_s=60)


def _unpack(data: bytes, folder: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(folder, filter="data")
    return folder


def test_release_build_is_reproducible_and_reports_its_own_manifest_version(tmp_path):
    first, second = build("4.5.6"), build("4.5.6")
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as archive:
        names = archive.getnames()
        manifest = json.load(archive.extractfile("worker-manifest.json"))
    assert names[:2] == ["worker-manifest.json", "run_worker.py"]
    assert "worker_client/agent.py" in names and not any("/tests/" in n or "__pycache__" in n for n in names)
    assert manifest["version"] == "4.5.6" and manifest["entrypoint"] == "run_worker.py"
    folder = _unpack(first, tmp_path / "release")
    # The release's own code, imported from its folder, reads its own manifest.
    probe = "from worker_client.runtime import own_version; print(own_version('checkout'))"
    output = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, '.'); {probe}"],
                            cwd=folder, capture_output=True, text=True, check=True).stdout
    assert output.strip() == "4.5.6"


# A child that follows the agent protocol of worker_client/runtime.py with a few lines: it waits while
# held, says "heartbeat" every 0.1 s, and on SIGTERM says "stopped" and exits 0.
GOOD_CHILD = textwrap.dedent("""
    import json, os, signal, sys, time
    if os.environ.get("LEADOPS_AGENT_HOLD") and sys.stdin.readline().strip() != "go":
        sys.exit(0)
    pipe = os.fdopen(int(os.environ["LEADOPS_AGENT_FD"]), "w", buffering=1)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    while not stopping:
        pipe.write(json.dumps({"event": "heartbeat", "version": "1.0.0", "update_target": None}) + "\\n")
        time.sleep(0.1)
    pipe.write(json.dumps({"event": "stopped"}) + "\\n")
""")
CRASHING_CHILD = textwrap.dedent("""
    import os, sys
    if os.environ.get("LEADOPS_AGENT_HOLD"):
        sys.stdin.readline()
    sys.exit(3)
""")


def _version(root: Path, version: str, source: str) -> None:
    folder = root / "versions" / version
    folder.mkdir(parents=True)
    (folder / "worker-manifest.json").write_text(json.dumps({"version": version, "entrypoint": "main.py"}))
    (folder / "main.py").write_text(source)


def test_a_crash_looping_version_is_replaced_by_the_last_good_one_and_reported(tmp_path):
    portal = FakePortal()
    root = tmp_path / "agent"
    _version(root, "1.0.0", GOOD_CHILD)
    _version(root, "2.0.0", CRASHING_CHILD)
    AgentState(running="2.0.0", last_good="1.0.0", switched_at=time.time()).save(root / "agent.json")
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"worker_id": portal.worker_id, "key_id": "k-1", "secret": "s3cret-ÄØ"}))
    client = LeadOpsClient(BASE_URL, portal.worker_id, "k-1", "s3cret-ÄØ", transport=portal.transport,
                           retry=RetryPolicy(max_attempts=1))
    agent = Agent(client, root=root, trusted_keys={}, credentials_file=credentials,
                  settings=AgentSettings(crash_limit=1, crash_window_s=30, check_interval_s=3600))
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (agent.child and agent.child.heartbeats):
            time.sleep(0.05)
        assert agent.child is not None and agent.child.version == "1.0.0" and agent.child.heartbeats
    finally:
        agent.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    state = AgentState.load(root / "agent.json")
    assert (state.running, state.last_good) == ("1.0.0", "1.0.0")
    assert state.quarantine["2.0.0"]["reason"].startswith("crash loop: exited 2 times")
    reports = [call.json for call in portal.calls("/updates/report")]
    assert reports == [{"version": "2.0.0", "stage": "rolled_back", "ok": True, "details": {
        "to_version": "1.0.0", "reason": state.quarantine["2.0.0"]["reason"], "crashes": 2, "exit_code": 3}}]
    # Each crash gave the worker's leases back at once.
    assert len(portal.calls("/jobs/release")) == 2
