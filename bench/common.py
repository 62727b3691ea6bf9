"""Shared helpers of the bench: PostgreSQL databases, timing windows, statistics, machine facts.

Every connection goes to 127.0.0.1 (BENCH_PG_HOST / BENCH_PG_PORT / BENCH_PG_USER may change the
port or user, never the host class: the bench refuses anything that is not a loopback address).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")

if PG_HOST not in ("127.0.0.1", "localhost", "::1"):
    raise SystemExit(f"bench: refusing to run against {PG_HOST!r}; only the local PostgreSQL is allowed")


def dsn(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"


def database_url(dbname: str) -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


def recreate_database(name: str) -> None:
    """Drop (closing its sessions) and create a database; every run starts from nothing."""
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


# --- statistics ------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the samples; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> float:
    """(max - min) / median of the runs: how far to trust a median on a noisy machine."""
    if len(values) < 2:
        return 0.0
    mid = median(values)
    return (max(values) - min(values)) / mid if mid else float("nan")


def name_value_table(rows: Sequence[tuple[str, str]]) -> str:
    """A result as a two-column table, one `| name | value |` line a row, the names padded alike."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"| {name.ljust(width)} | {value} |" for name, value in rows)


def latency_rows(result: dict, *, unit: str, quantiles: Sequence[str], target: str) -> list[tuple[str, str]]:
    """The rows a latency bench ends with: its quantiles and maximum (`result["p99_ms"]`, ...), the
    target and PASS or FAIL."""
    return [*((f"{name} {unit}", f"{result[f'{name}_{unit}']}") for name in (*quantiles, "max")),
            ("target", target), ("result", "PASS" if result["pass"] else "FAIL")]


# --- command lines --------------------------------------------------------------------------------------


def before_after_parser(doc: str, *, before: str, reps: int, reps_help: str, calls_help: str
                        ) -> argparse.ArgumentParser:
    """The options of a bench that measures a `--before` checkout against this tree side by side, in
    `--rounds` of `--reps` whole requests and `--calls` micro steps."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help=before)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=reps, help=reps_help)
    parser.add_argument("--calls", type=int, default=2000, help=calls_help)
    return parser


def module_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of `python -m bench.<module>`: its docstring, as written, is the help."""
    return argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


# --- CPU accounting (Linux /proc) --------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_pids(database: str | None = None) -> list[int]:
    """PostgreSQL processes: all of them, or the backends of one database plus the shared ones
    (WAL writer, checkpointer...), leaving out the sessions of other databases on a shared server."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as fh:
                if fh.read().strip() not in ("postgres", "postmaster"):
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                title = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        is_backend = "(" in title            # "postgres: user db 127.0.0.1(port) state"
        if database is None or not is_backend or f" {database} " in title:
            pids.append(int(entry))
    return pids


@dataclass
class CpuSnapshot:
    wall: float
    by_pid: dict[int, float]


def cpu_snapshot(pids: Iterable[int]) -> CpuSnapshot:
    return CpuSnapshot(time.time(), {pid: proc_cpu_seconds(pid) for pid in pids})


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """CPU seconds between two snapshots; a process that appeared in between counts whole."""
    return sum(max(0.0, cpu - before.by_pid.get(pid, 0.0)) for pid, cpu in after.by_pid.items())


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / _CLK_TCK


# --- facts about the machine -------------------------------------------------------------------------


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip()
    except OSError:
        return ""


def machine_info() -> dict[str, object]:
    with psycopg.connect(dsn("postgres")) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        pg_settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            [["max_connections", "shared_buffers", "synchronous_commit", "fsync", "work_mem",
              "max_wal_size"]],
        ).fetchall())
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        with open("/proc/meminfo") as fh:
            mem_gb = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    dirty = _git("status", "--porcelain")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": mem_gb,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_files": len(dirty.splitlines()) if dirty else 0,
    }


def child_json(argv: Sequence[str], *, tree: Path, env: dict[str, str], what: str) -> dict[str, float]:
    """Run `python ARGV` in a checkout, its modules first on the path; the JSON its last line prints."""
    proc = subprocess.run([sys.executable, *argv], cwd=tree, env={**env, "PYTHONPATH": str(tree)},
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{what} in {tree} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dump_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


# --- client processes that start their clock together -------------------------------------------------


class Clients:
    """A pool of spawned client processes whose measured window starts only once all are ready.

    Each client function gets `sync=` and calls `client_ready(sync)` after its own preparation
    (connections, generated data); the window [start_at, end_at] is fixed only when every client is
    ready, so a slow spawn on a busy machine shortens nobody's run.
    """

    def __init__(self, processes: int) -> None:
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self._manager = self._ctx.Manager()
        self._ready = self._manager.Queue()
        self._go = self._manager.Event()
        self._timing = self._manager.dict()
        self._pool = self._ctx.Pool(processes)
        self._pending: list = []

    def submit(self, fn, **kwargs) -> None:
        self._pending.append(self._pool.apply_async(fn, kwds={**kwargs, "sync": (self._ready, self._go, self._timing)}))

    def start(self, *, warmup_s: float, seconds: float, ready_timeout: float = 180.0) -> tuple[float, float]:
        import queue as queue_module

        deadline = time.time() + ready_timeout
        ready = 0
        while ready < len(self._pending):
            for job in self._pending:
                if job.ready() and not job.successful():
                    job.get()       # raises the client's exception here
            try:
                self._ready.get(timeout=0.5)
                ready += 1
            except queue_module.Empty:
                if time.time() > deadline:
                    raise RuntimeError("bench clients did not get ready in time") from None
        start_at = time.time() + warmup_s
        self._timing.update({"start_at": start_at, "end_at": start_at + seconds})
        self._go.set()
        return start_at, start_at + seconds

    def results(self, timeout: float) -> list:
        return [job.get(timeout=timeout) for job in self._pending]

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
        self._manager.shutdown()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_ready(sync) -> tuple[float, float]:
    """In a client process: say ready, wait for the common start; return (start_at, end_at)."""
    ready, go, timing = sync
    ready.put(os.getpid())
    if not go.wait(timeout=300):
        raise RuntimeError("no start signal")
    return timing["start_at"], timing["end_at"]
