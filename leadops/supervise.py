"""The processes `make run` starts, and how it stops them all (leadops/devserver.py).

Each child runs in a process group of its own, so a stop reaches whatever it forked. Stopping is
one pass with a deadline (docs/RUNBOOK.md, "make run"): the workers get SIGTERM first (they give their
leases back while daphne still answers), then everything else; whatever still runs when
`STOP_DEADLINE_S` is near, and every descendant recorded before the stop (a child that moved to a
session of its own), gets SIGKILL. A second Ctrl-C or SIGTERM during the stop (make forwards one)
is ignored: the stop always finishes.

Also here: who holds a TCP port, read from /proc, so `make run` can refuse a taken port by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

STOP_DEADLINE_S = 10.0
# The workers' share of the deadline: enough to release their leases; then the servers are stopped.
WORKERS_GRACE_S = 3.0
# What is left for SIGKILL and the reaping that follows.
KILL_MARGIN_S = 1.5


class StopRequested(Exception):
    """Raised in the main thread by the first SIGINT or SIGTERM."""


@dataclass
class Signals:
    """The first SIGINT / SIGTERM ends the main loop; later ones are noted and ignored."""

    stopping: bool = False
    received: list[int] = field(default_factory=list)

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.handle)
        signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        if self.stopping:
            return  # a second signal never interrupts the stop
        self.stopping = True
        raise StopRequested

    def begin_stop(self) -> None:
        self.stopping = True


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    worker: bool = False


def _ppid_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the fields after the last ")" are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, grandchildren, ...), read from /proc."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppid_map().items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has finished: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _wait(children: Iterable[Child], until: float) -> None:
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, until - time.monotonic()))


def stop_all(children: list[Child], *, deadline_s: float = STOP_DEADLINE_S) -> list[str]:
    """Stop every child and all it forked within `deadline_s`; the names of those that needed SIGKILL."""
    start = time.monotonic()
    recorded = set().union(*(descendants(child.process.pid) for child in children)) if children else set()
    running = [child for child in children if child.process.poll() is None]
    workers = [child for child in running if child.worker]
    for child in workers:
        _signal_group(child.process, signal.SIGTERM)
    _wait(workers, start + min(WORKERS_GRACE_S, deadline_s / 3))
    for child in running:
        if not child.worker:
            _signal_group(child.process, signal.SIGTERM)
    _wait(running, start + deadline_s - KILL_MARGIN_S)
    killed = []
    for child in running:
        if child.process.poll() is None:
            killed.append(child.name)
        # The whole group, even when its leader has exited: a forked helper may still hold a port.
        _signal_group(child.process, signal.SIGKILL)
    for pid in recorded:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    _wait(running, start + deadline_s)
    return killed


# --- who holds a port -------------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    """True when a server could listen on host:port now (a socket in TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], parts[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def _socket_links(process: Path) -> set[str]:
    """What the open files of a process point to; one that closes while read is skipped."""
    links: set[str] = set()
    try:
        fds = list((process / "fd").iterdir())
    except OSError:
        return links
    for fd in fds:
        with contextlib.suppress(OSError):
            links.add(os.readlink(fd))
    return links


def port_owner(port: int) -> str | None:
    """'pid 1234 (python -m daphne ...)' for the process listening on `port`, or None if not found."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if _socket_links(entry) & inodes:
            try:
                raw = (entry / "cmdline").read_bytes()
                command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                command = ""
            return f"pid {entry.name} ({command[:160]})" if command else f"pid {entry.name}"
    return None


def port_taken_message(host: str, port: int) -> str | None:
    """Why `make run` cannot use host:port, or None when it can."""
    if port_free(host, port):
        return None
    owner = port_owner(port)
    held = f"port {port} is in use by {owner}" if owner else f"port {port} in use"
    return (f"make run: {held}. Stop it (an earlier `make run`?) or choose another port: "
            f"make run PORT={port + 1}")
