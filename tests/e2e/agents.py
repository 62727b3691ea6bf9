"""Helpers of the agent tests: releases of the reference worker built by `make worker-release` (from a
patched copy of the package when a version must behave differently), and agents as real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from releases_app.models import WorkerReleaseStatus
from releases_app.signing import signing_keys
from tests.e2e.conftest import wait_until
from tests.e2e.servers import BASE_DIR


def release_build(version: str, workdir: Path, *, patch: str = "", patch_file: str = "worker.py") -> Path:
    """`make worker-release VERSION=version` of a copy of worker_client with `patch` appended to one module."""
    source = workdir / f"src-{version}" / "worker_client"
    shutil.copytree(BASE_DIR / "worker_client", source,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    if patch:
        with open(source / patch_file, "a") as module:
            module.write("\n\n# Added by the test: what only this version's code does.\n" + patch)
    dist = workdir / "dist"
    subprocess.run(["make", "-s", "worker-release", f"VERSION={version}", f"WORKER_SOURCE={source}",
                    f"DIST={dist}"], cwd=BASE_DIR, check=True, capture_output=True)
    return dist / f"leadops-worker-{version}.tar.gz"


def trust_key_argument() -> str:
    key = signing_keys()[0]
    return f"{key.key_id}:{key.public_b64}"


def credentials_file(root: Path, issued) -> Path:
    """The worker's credentials where an agent reads them: `<root>/credentials.json`, mode 0600."""
    root.mkdir(parents=True, exist_ok=True)
    credentials = root / "credentials.json"
    credentials.write_text(json.dumps({"worker_id": issued.worker_id, "key_id": issued.key_id,
                                       "secret": issued.secret}))
    credentials.chmod(0o600)
    return credentials


class AgentFiles:
    """What an agent (Python or Node) keeps in its install dir `root`: `agent.json`, `agent.log`."""

    worker_id: str
    root: Path
    log_path: Path
    log_tail = 4000

    def state(self) -> dict:
        try:
            return json.loads((self.root / "agent.json").read_text())
        except (OSError, ValueError):
            return {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-self.log_tail:]


def assert_crash_loop_rolled_back(agent: AgentFiles, *, version: str, to_version: str, timeout: float) -> None:
    """The agent reports `version` rolled back to `to_version` after it passed its self-test: the crash
    loop caught it."""

    def rolled_back() -> bool:
        status = WorkerReleaseStatus.objects.filter(worker_id=agent.worker_id, version=version).first()
        return status is not None and status.rolled_back_at is not None

    assert wait_until(rolled_back, timeout=timeout), agent.log()
    status = WorkerReleaseStatus.objects.get(worker_id=agent.worker_id, version=version)
    assert status.install_ok and status.self_test_ok
    assert "crash loop" in status.last_details["reason"] and status.last_details["to_version"] == to_version


class AgentProcess(AgentFiles):
    """`python -m worker_client.agent` for one worker, its output in `<root>/agent.log`."""

    def __init__(self, url: str, issued, root: Path, *, agent_args: list[str] | None = None,
                 worker_args: list[str] | None = None) -> None:
        self.worker_id = issued.worker_id
        self.root = root
        credentials = credentials_file(root, issued)
        self.log_path = root / "agent.log"
        command = [sys.executable, "-m", "worker_client.agent", "--url", url, "--install-dir", str(root),
                   "--trust-key", trust_key_argument(), "--credentials-file", str(credentials),
                   *(agent_args or []), "--", *(worker_args or [])]
        env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def stop(self, timeout: float = 60) -> int:
        return agent_stop(self.process, timeout=timeout)


def agent_stop(process: subprocess.Popen, *, timeout: float) -> int:
    """SIGTERM an agent (it stops its child gracefully); kill its whole session if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return -9
