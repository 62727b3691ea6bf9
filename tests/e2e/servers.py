"""The one place that knows how a live portal process is started in tests.

Every test that needs a real server process (the e2e portal, the rate-limit processes, the two-node
test, the chaos run) starts it through `start_server(kind, port, env)`. The command line itself
comes from `leadops.servers.server_command`, the same one the bench measures and `deploy/` runs.
The worker-API tests use `CHOSEN` (the server picked by measurement, docs/PERFORMANCE.md, "Which
server"); the WebSocket and browser-monitor tests `ASYNC` (daphne).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from leadops.servers import ASYNC, CHOSEN, KINDS
from leadops.servers import server_command as _server_argv

BASE_DIR = Path(__file__).resolve().parents[2]
LOG_DIR = BASE_DIR / "test-artifacts"
# "gunicorn" is gunicorn with its default sync workers, 2 processes (a second node of the two-node test).
SERVER_KINDS = (*KINDS, "gunicorn")

__all__ = ["ASYNC", "BASE_DIR", "CHOSEN", "LOG_DIR", "SERVER_KINDS", "free_port", "log_of", "server_command",
           "server_kill", "server_stop", "sessions_end", "start_server"]


def free_port() -> int:
    """A port free now, chosen below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is one of those it also gives to outgoing connections:
    between this check and the server's own bind, a client socket of the test (to PostgreSQL, Redis,
    another server) could take it, and the server fails with "Address already in use". Below the
    ephemeral range only another listener can.
    """
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1025, low - 12_000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: fall back to what the kernel picks
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def server_command(kind: str, port: int) -> list[str]:
    """The command line of one portal process of `kind` on 127.0.0.1:`port`."""
    if kind == "gunicorn":
        return _server_argv("gunicorn-sync", port=port, processes=2, python=sys.executable)
    return _server_argv(kind, port=port, python=sys.executable)


def start_server(kind: str, port: int, env: Mapping[str, str], *, log_name: str | None = None,
                 timeout: float = 30.0) -> subprocess.Popen:
    """Start a portal process and return it once it answers HTTP; its output goes to test-artifacts/
    `<log_name or kind>-<port>.log`. Stop it with `server_stop` (or `sessions_end` for several)."""
    LOG_DIR.mkdir(exist_ok=True)
    log_path = LOG_DIR / f"{log_name or kind}-{port}.log"
    with open(log_path, "ab") as log:
        # A session of its own: gunicorn forks workers that hold the socket, and a kill must reach them.
        process = subprocess.Popen(server_command(kind, port), cwd=BASE_DIR, env=dict(env), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        server_wait_ready(process, f"http://127.0.0.1:{port}", timeout=timeout, log_path=log_path)
    except BaseException:
        server_stop(process)
        raise
    return process


def log_of(url: str) -> Path:
    """The log file of the server started by `start_server` that answers at `url`."""
    port = url.rsplit(":", 1)[1].rstrip("/")
    matches = sorted(LOG_DIR.glob(f"*-{port}.log"), key=lambda path: path.stat().st_mtime)
    if not matches:
        raise FileNotFoundError(f"no server log for port {port} in {LOG_DIR}")
    return matches[-1]


def server_wait_ready(process: subprocess.Popen, url: str, *, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early; see {log_path}:\n{log_path.read_text()[-2000:]}")
        try:
            httpx.get(f"{url}/api/v1/nothing", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s; see {log_path}")


def server_stop(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """Ask the server and what it forked to stop (SIGTERM); kill them when they do not within `timeout`."""
    sessions_end([process], timeout=timeout)


def server_kill(process: subprocess.Popen) -> None:
    """SIGKILL the server and every process it forked, as a crash of the machine would."""
    _signal_session(process, signal.SIGKILL)
    process.wait()


def _signal_session(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole session is gone already
        os.killpg(process.pid, signum)


def sessions_end(processes: list[subprocess.Popen], *, timeout: float = 5.0) -> None:
    """End processes started with `start_new_session=True` and all they forked (a q cluster's workers).

    SIGTERM to every session at once, then wait; what still runs after `timeout` is killed.
    """
    # The leader may be gone while what it forked still runs (a killed gunicorn master): signal the
    # session whatever the leader's state.
    for process in processes:
        _signal_session(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_session(process, signal.SIGKILL)
            process.wait()
