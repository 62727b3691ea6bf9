"""The peer: Procrastinate 3.10 draining no-op jobs on the same PostgreSQL server.

Procrastinate is the PostgreSQL task queue a Python team would most likely pick instead of writing
a queue. It runs in its own database (`procrastinate` schema applied by its schema manager). A run
defers N no-op jobs, then starts W worker processes (`run_worker(wait=False)`, which exit once the
queue is empty) and measures from the first job started to the last job finished, read from
Procrastinate's own `procrastinate_events` table, so process start-up is not counted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import psycopg

from bench.common import ROOT, dsn, median, recreate_database, spread

DB = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + "_procrastinate"

try:
    import procrastinate
except ImportError:          # the bench dependency is installed by `make bench`
    procrastinate = None

if procrastinate is not None:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_PEER_DSN", dsn(DB))),
    )

    @app.task(name="noop", queue="bench")
    def noop(**_: Any) -> None:
        """A no-op job: the time measured is the queue's own."""


def available() -> bool:
    return procrastinate is not None


def version() -> str:
    return getattr(procrastinate, "__version__", "") if procrastinate else ""


def setup() -> None:
    recreate_database(DB)

    async def _apply() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    asyncio.run(_apply())


def _reset() -> None:
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
                     "procrastinate_workers RESTART IDENTITY CASCADE")


def defer(count: int) -> None:
    async def _defer() -> None:
        async with app.open_async():
            for start in range(0, count, 1_000):
                size = min(1_000, count - start)
                await noop.batch_defer_async(*({"n": start + i} for i in range(size)))

    asyncio.run(_defer())


def worker_main(concurrency: int) -> None:
    app.run_worker(concurrency=concurrency, wait=False, install_signal_handlers=False,
                   delete_jobs="never", queues=["bench"])


def drain(*, jobs: int, processes: int, concurrency: int, timeout_s: float = 120.0) -> dict[str, Any]:
    _reset()
    defer(jobs)
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE procrastinate_jobs")
    env = {**os.environ, "BENCH_PEER_DSN": dsn(DB)}
    started = time.time()
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.peer_worker", str(concurrency)], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(processes)
    ]
    errors = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, timeout_s - (time.time() - started)))
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            errors.append("timeout")
        if proc.returncode not in (0, None):
            errors.append(err.decode(errors="replace")[-500:])
    with psycopg.connect(dsn(DB)) as conn:
        done, first, last = conn.execute(
            "SELECT count(*) FILTER (WHERE type = 'succeeded'), "
            "min(at) FILTER (WHERE type = 'started'), max(at) FILTER (WHERE type = 'succeeded') "
            "FROM procrastinate_events"
        ).fetchone()
        left = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')").fetchone()[0]
    seconds = (last - first).total_seconds() if first and last else float("nan")
    return {"jobs": done, "left": left, "seconds": seconds,
            "jobs_per_s": done / seconds if seconds and seconds > 0 else 0.0, "errors": errors}


def measure(*, jobs: int, processes: int, concurrency: int, runs: int) -> dict[str, Any]:
    samples = [drain(jobs=jobs, processes=processes, concurrency=concurrency) for _ in range(runs)]
    rates = [s["jobs_per_s"] for s in samples]
    return {"processes": processes, "concurrency": concurrency, "jobs_per_run": jobs,
            "jobs_per_s": median(rates), "runs": rates, "spread": spread(rates), "samples": samples,
            "version": version()}


