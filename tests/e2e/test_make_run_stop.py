"""`make run` stops everything it started, and refuses a taken port (docs/RUNBOOK.md, "make run").

A real `make run` in a process group of its own, on a random port (`make run PORT=...`): once it
answers, SIGTERM goes to the whole group, as a terminal or a supervisor sends it. make forwards a
second SIGTERM to the devserver, which must not abort its stop. Every process recorded below make
before the signal is gone, and the port is free, within 10 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from leadops.supervise import alive, descendants, port_free
from tests.e2e.servers import free_port

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.real_clock]


def make_run(port: int, tmp_path: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}",
           "LEADOPS_MEDIA_ROOT": str(tmp_path / "media")}
    for name in ("REDIS_URL", "PORT", "LEADOPS_PORT", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    with open(log_path, "wb") as log:
        return subprocess.Popen(["make", "-s", "run", f"PORT={port}"], cwd=BASE_DIR, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_to_the_process_group_ends_every_child_and_frees_the_port(tmp_path):
    port = free_port()
    log_path = tmp_path / "run.log"
    process = make_run(port, tmp_path, log_path)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not ("LeadOps is running" in log_path.read_text()
                                                   and answers(port)):
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
        assert answers(port), log_path.read_text()[-3000:]
        time.sleep(3)  # the children have forked theirs (the q cluster's workers, the agents' releases)
        before = descendants(process.pid)
        # make, the devserver, daphne, the q cluster, the evaluator, the fleet and three agents at least.
        assert len(before) >= 8, before

        os.killpg(process.pid, signal.SIGTERM)
        stopped_at = time.monotonic()
        process.wait(timeout=15)
        while time.monotonic() < stopped_at + 10 and (any(alive(pid) for pid in before)
                                                      or not port_free("127.0.0.1", port)):
            time.sleep(0.2)
        elapsed = time.monotonic() - stopped_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log_path.read_text()
    left = sorted(pid for pid in before if alive(pid))
    assert left == [], (left, output[-3000:])
    assert port_free("127.0.0.1", port) and elapsed < 10, output[-3000:]
    assert "Stopping every process make run started" in output
    # make's forwarded second SIGTERM did not abort the stop with a traceback.
    assert "Traceback" not in output.split("Stopping every process", 1)[1], output[-3000:]


def test_make_run_refuses_a_taken_port_and_names_the_holder(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        log_path = tmp_path / "run.log"
        process = make_run(port, tmp_path, log_path)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert process.returncode != 0
    assert f"port {port} is in use by pid {os.getpid()}" in output, output
    assert not (tmp_path / "run.sqlite3").exists()  # refused before touching any database
