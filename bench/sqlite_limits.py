"""Where the embedded SQLite default stops being enough (docs/DEPLOY.md, "When to move to PostgreSQL").

    .venv/bin/python -m bench.sqlite_limits [--seconds 10] [--steps 5,10,20,40,80,160]

The portal as `make run` starts it (one daphne process, SQLite in WAL mode with immediate
transactions, no Redis), in production settings, on a fresh SQLite file. Reference workers in two
client processes run the job path (v1.1 exchange: report the last jobs, pull the next; 20 leads a
job) for a window at each fleet size, growing until errors (`database is locked` among them) appear
or the 95th percentile of a round trip passes 10 s. Prints one line per step and writes the table
to bench/results/sqlite-limits-<database>-<date>.json. The same steps can be run on PostgreSQL for comparison
with `--postgres` (the bench database of bench/portal.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench import common, portal
from bench.api_load import client_kind_available, client_process

CLIENT_PROCESSES = 2
LEADS_PER_JOB = 20
BATCH = 5
# A round trip this slow is where a worker's 15-60 s timeouts and lease renewals start to fail.
P95_LIMIT_MS = 10_000.0


def _queued(db_path: Path | None) -> int:
    if db_path is None:
        return portal.queued_jobs()
    with sqlite3.connect(db_path, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM queueing_job WHERE state = 'queued'").fetchone()[0]


def _step(*, env: dict[str, str], url: str, creds: list[dict[str, str]], seconds: float, stream_base: int,
          db_path: Path | None, kind: str) -> dict[str, Any]:
    missing = len(creds) * BATCH * 2 + int(400 * seconds) - _queued(db_path)
    if missing > 0:
        portal.enqueue(env, missing)
    per_process = max(1, len(creds) // CLIENT_PROCESSES)
    with common.Clients(CLIENT_PROCESSES) as clients:
        for index in range(CLIENT_PROCESSES):
            clients.submit(client_process, index=index, kind=kind,
                           creds=creds[index * per_process:(index + 1) * per_process], base_urls=[url],
                           batch=BATCH, leads_per_job=LEADS_PER_JOB, stream_base=stream_base + index * per_process,
                           mode="exchange")
        clients.start(warmup_s=1.0, seconds=seconds)
        results = clients.results(timeout=seconds + 180)
    jobs = sum(result["jobs"] for result in results)
    errors: dict[str, int] = {}
    for result in results:
        for name, count in result["errors"].items():
            errors[name] = errors.get(name, 0) + count
    latencies = sorted(ms for result in results for ms in result["pull_ms"])
    return {
        "workers": len(creds), "jobs_per_s": round(jobs / seconds, 1),
        "leads_per_s": round(jobs * LEADS_PER_JOB / seconds, 1),
        "round_trip_p50_ms": round(common.percentile(latencies, 50), 1) if latencies else None,
        "round_trip_p95_ms": round(common.percentile(latencies, 95), 1) if latencies else None,
        "errors": errors, "error_samples": [s for r in results for s in r["error_samples"]][:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", default="5,10,20,40,80,160")
    parser.add_argument("--postgres", action="store_true", help="the same steps on PostgreSQL, for comparison")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",")]
    log_dir = portal.new_log_dir()
    env = portal.bench_env(redis=args.postgres and portal.redis_reachable(), log_dir=log_dir)
    db_path: Path | None = None
    if args.postgres:
        portal.setup_database(env)
    else:
        db_path = log_dir / "portal.sqlite3"
        env["DATABASE_URL"] = f"sqlite:///{db_path}"
        portal.manage(env, "migrate", "--noinput", timeout=600)
    creds = portal.create_workers(env, max(steps), prefix="lim-w")
    kind = client_kind_available("auto")
    server = portal.Daphne(env, log_dir)
    server.wait_ready()
    rows: list[dict[str, Any]] = []
    # Each worker of each step gets lead numbers of its own (bench/leads.py has room for ~700 streams).
    stream_base = 1
    try:
        for workers in steps:
            row = _step(env=env, url=server.url, creds=creds[:workers], seconds=args.seconds,
                        stream_base=stream_base, db_path=db_path, kind=kind)
            stream_base += workers
            row["database_is_locked_in_log"] = server.log_tail(10**7).count("database is locked")
            rows.append(row)
            print(json.dumps(row), flush=True)
            failed = sum(row["errors"].values()) > 0 or row["database_is_locked_in_log"]
            if failed or (row["round_trip_p95_ms"] or 0) > P95_LIMIT_MS:
                break
            time.sleep(1)
    finally:
        server.stop()
    database = "postgresql" if args.postgres else "sqlite"
    out = common.ROOT / "bench" / "results" / f"sqlite-limits-{database}-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"database": database, "load_average_at_end": os.getloadavg()[0],
                               "seconds": args.seconds, "batch": BATCH, "leads_per_job": LEADS_PER_JOB,
                               "machine": common.machine_info(),
                               "steps": rows}, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
