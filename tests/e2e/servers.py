"""Start the portal's HTTP servers for end-to-end tests: one function, the production command lines.

`start_server(kind, port, env)` runs `leadops.servers.server_command` (the same argv the bench and
`deploy/` use) on 127.0.0.1 and returns once the server answers. The worker-API tests run against
`CHOSEN` (the server picked by measurement, docs/PERFORMANCE.md); the WebSocket and browser-monitor
tests against `ASYNC` (daphne), as the proxy of docs/DEPLOY.md splits them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from leadops.servers import ASYNC, CHOSEN, server_command

BASE_DIR = Path(__file__).resolve().parents[2]
LOG_DIR = BASE_DIR / "test-artifacts"

__all__ = ["ASYNC", "CHOSEN", "RunningServer", "free_port", "log_of", "start_server"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_of(url: str) -> Path:
    """The log file of the server started by `start_server` that answers at `url`."""
    port = url.rsplit(":", 1)[1].rstrip("/")
    matches = sorted(LOG_DIR.glob(f"*-{port}.log"), key=lambda path: path.stat().st_mtime)
    if not matches:
        raise FileNotFoundError(f"no server log for port {port} in {LOG_DIR}")
    return matches[-1]


@dataclass
class RunningServer:
    kind: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the server's process group (a master and its workers), SIGKILL after `timeout`."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)


def start_server(kind: str, port: int, env: Mapping[str, str], *, processes: int = 1,
                 timeout: float = 30, log_name: str | None = None) -> RunningServer:
    """Serve the portal with `kind` on 127.0.0.1:`port` under `env`; return when it answers HTTP.

    Raises RuntimeError (with the log's tail) when the process exits or does not answer within
    `timeout` seconds. The caller stops it with `.stop()`.
    """
    LOG_DIR.mkdir(exist_ok=True)
    log_path = LOG_DIR / (log_name or f"{kind}-{port}.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            server_command(kind, port=port, processes=processes, python=sys.executable),
            cwd=BASE_DIR, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = RunningServer(kind=kind, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{kind} exited early ({process.returncode}); {log_path}:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /api/v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(16).startswith(b"HTTP/1."):
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{kind} did not answer within {timeout:.0f} s; {log_path}:\n{server.log_tail()}")
