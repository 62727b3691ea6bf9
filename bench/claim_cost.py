"""The claim alone: `jobs_pull` (the claim with its guards, in its own transaction) timed in 16
workers at once, with 10,000 and then 1,000,000 ready jobs in the queue.

No HTTP: the claim is what must not grow with the queue, and its latency under 16 concurrent
claimers is the database's part of every pull. The 16 workers are threads of 4 Django processes
(production settings, the bench database), each thread with its own connection, each calling
`jobs_pull(max_jobs=1)` in a loop. The ready jobs are made with one `INSERT ... SELECT
generate_series` (bench/portal.py, `clone_ready_jobs`), not through the API; the queue is refilled
to its size before each run, so the claims of a run take at most a few percent of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg

from bench import common, portal

PROCESSES = 4
THREADS = 4

CHILD = r"""
import json, sys, threading, time
import django
django.setup()
from django.db import connection
from queueing.services import jobs_pull
from workers_mgmt.models import Worker

worker_ids = json.loads(sys.argv[1])
workers = {w.pk: w for w in Worker.objects.filter(pk__in=worker_ids)}
print("ready", flush=True)
start_at, end_at = (float(x) for x in sys.stdin.readline().split())
samples, claimed, errors = [], [0], []

def loop(worker_id):
    worker = workers[worker_id]
    mine = []
    while time.time() < start_at:
        jobs_pull(worker=worker, max_jobs=1)      # warm-up: connection, caches
    while time.time() < end_at:
        t0 = time.perf_counter()
        try:
            result = jobs_pull(worker=worker, max_jobs=1)
        except Exception as exc:
            errors.append(repr(exc)[:300])
            continue
        mine.append((time.perf_counter() - t0) * 1000)
        claimed[0] += len(result.claims)
    samples.extend(mine)
    connection.close()

threads = [threading.Thread(target=loop, args=(w,)) for w in worker_ids]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"ms": samples, "claimed": claimed[0], "errors": errors[:5]}))
"""


def _ready(database: str) -> int:
    with psycopg.connect(common.dsn(database)) as conn:
        return conn.execute("SELECT count(*) FROM queueing_job WHERE state = 'queued'").fetchone()[0]


def fill_to(ready: int, *, database: str = portal.DB) -> int:
    """Top the ready jobs up to `ready` (one INSERT ... SELECT generate_series); return the count."""
    missing = ready - _ready(database)
    if missing > 0:
        portal.clone_ready_jobs(missing, database=database)
    return _ready(database)


def run_once(env: dict[str, str], worker_ids: list[str], seconds: float) -> dict[str, Any]:
    import time

    per = len(worker_ids) // PROCESSES
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(worker_ids[i * per:(i + 1) * per])],
                              cwd=common.ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(PROCESSES)]
    for proc in procs:      # every child has started Django and loaded its workers
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"claim child failed to start: {proc.communicate(timeout=30)[1][-2000:]}")
    # One second of warm-up claims (connections, caches) before the clock starts.
    start_at = time.time() + 1.0
    end_at = start_at + seconds
    for proc in procs:
        proc.stdin.write(f"{start_at} {end_at}\n")
        proc.stdin.flush()
    common.wait_until(start_at)
    pg0 = common.cpu_snapshot(common.postgres_pids(portal.DB))
    common.wait_until(end_at)
    pg1 = common.cpu_snapshot(common.postgres_pids(portal.DB))
    ms: list[float] = []
    claimed = 0
    errors: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"claim child failed: {err[-2000:]}")
        part = json.loads(out.strip().splitlines()[-1])
        ms.extend(part["ms"])
        claimed += part["claimed"]
        errors.extend(part["errors"])
    return {"claims": len(ms), "claimed_jobs": claimed, "p50_ms": common.percentile(ms, 50),
            "p99_ms": common.percentile(ms, 99), "mean_ms": sum(ms) / len(ms) if ms else None,
            "claims_per_s": len(ms) / seconds, "errors": errors,
            "postgres_cpu_ms_per_claim": common.cpu_used(pg0, pg1) * 1000 / len(ms) if ms else None}


def measure(env: dict[str, str], worker_ids: list[str], *, seconds: float, runs: int, sizes: tuple[int, ...],
            log) -> dict[str, Any]:
    """For each queue size (ascending), `runs` runs of `seconds`; medians of the runs."""
    if len(worker_ids) < PROCESSES * THREADS:
        raise RuntimeError(f"the claim bench needs {PROCESSES * THREADS} workers")
    worker_ids = worker_ids[:PROCESSES * THREADS]
    out: dict[str, Any] = {"workers": len(worker_ids), "processes": PROCESSES, "threads": THREADS, "sizes": {}}
    for size in sizes:
        results = []
        for run in range(runs):
            ready = fill_to(size)
            r = run_once(env, worker_ids, seconds)
            r["ready_at_start"] = ready
            results.append(r)
            log(f"claim with {ready:,} ready jobs, run {run + 1}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                f"{r['claims_per_s']:.0f} claims/s" + (f", errors {r['errors'][:2]}" if r["errors"] else ""))
        out["sizes"][str(size)] = {
            "p50_ms": common.median([r["p50_ms"] for r in results]),
            "p99_ms": common.median([r["p99_ms"] for r in results]),
            "mean_ms": common.median([r["mean_ms"] for r in results if r["mean_ms"] is not None]),
            "claims_per_s": common.median([r["claims_per_s"] for r in results]),
            "postgres_cpu_ms_per_claim": common.median([r["postgres_cpu_ms_per_claim"] for r in results
                                                        if r["postgres_cpu_ms_per_claim"] is not None]),
            "runs": results,
        }
    small, large = str(sizes[0]), str(sizes[-1])
    out["cost_ratio_p50"] = out["sizes"][large]["p50_ms"] / out["sizes"][small]["p50_ms"]
    out["cost_ratio_mean"] = out["sizes"][large]["mean_ms"] / out["sizes"][small]["mean_ms"]
    out["cost_ratio_postgres_cpu"] = (out["sizes"][large]["postgres_cpu_ms_per_claim"]
                                      / out["sizes"][small]["postgres_cpu_ms_per_claim"])
    return out
