"""Wake-up latency of an idle worker: from a job's enqueue to its claim by a long-polling worker.

50 simulated workers (one client process, keep-alive connections, round robin over the server's
processes) long-poll `POST /jobs/pull {"max": 1, "wait_s": 30}` on an empty queue (the ready jobs
left by earlier sections are postponed a year). The bench then adds one ready job at a time with
one SQL `INSERT` (a copy of an `enqueue_jobs` job, as `portal.clone_ready_jobs(1)` makes) in its
own autocommit transaction, 40 times at random intervals of 0.5-1.5 s. A job's latency is from the
moment its INSERT's commit returned to the moment a worker had the claim answer that carries it (both
clocks are this machine's). The worker that got it reports it at once (exchange, `pull: {max: 0}`)
and goes back to its long poll. Target: p99 <= 250 ms, every job claimed, no failed request.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

import psycopg

from bench import common, fleet, portal
from bench.fleet_client import LONG_POLL_S, LONG_POLL_TIMEOUT_S, Http, raise_nofile

TARGET_P99_MS = 250.0
WORKERS = 50
JOBS = 40
INTERVAL_S = (0.5, 1.5)


async def _idle_worker(url: str, cred: dict[str, str], received: list[tuple[int, float]], errors: dict[str, int],
                       samples: list[str], end_at: float) -> None:
    host, _, port = url.split("://", 1)[1].partition(":")
    http = Http(host, int(port), keepalive=True)
    try:
        while time.time() < end_at:
            try:
                status, answer = await http.post("/jobs/pull", {"max": 1, "wait_s": LONG_POLL_S}, cred,
                                                 timeout=LONG_POLL_TIMEOUT_S)
            except Exception as exc:
                key = f"longpoll:{type(exc).__name__}"
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(1.0)
                continue
            got = time.time()
            if status >= 400:
                errors[f"longpoll:{status}"] = errors.get(f"longpoll:{status}", 0) + 1
                if len(samples) < 3:
                    samples.append(f"longpoll {status}: {str(answer)[:300]}")
                await asyncio.sleep(1.0)
                continue
            for job in answer.get("jobs") or []:
                received.append((int(job["id"]), got))
                report = {"job_id": job["id"], "attempt_id": job["attempt_id"], "idempotency_key": str(uuid.uuid4()),
                          "outcome": "succeeded", "leads": [{"name": "Wake-up bench", "phone": "0551234567"}]}
                try:
                    status, _ = await http.post("/jobs/exchange", {"reports": [report], "pull": {"max": 0}}, cred)
                except Exception as exc:
                    status = 599
                    errors[f"report:{type(exc).__name__}"] = errors.get(f"report:{type(exc).__name__}", 0) + 1
                if status >= 400 and status != 599:
                    errors[f"report:{status}"] = errors.get(f"report:{status}", 0) + 1
    finally:
        http.close()


async def _idle_fleet(assignments: list[tuple[str, dict[str, str]]], end_at: float) -> dict[str, Any]:
    received: list[tuple[int, float]] = []
    errors: dict[str, int] = {}
    samples: list[str] = []
    tasks = [asyncio.ensure_future(_idle_worker(url, cred, received, errors, samples, end_at))
             for url, cred in assignments]
    await asyncio.wait(tasks, timeout=max(0.0, end_at - time.time()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"received": received, "errors": errors, "error_samples": samples}


def idle_process(*, assignments: list[tuple[str, dict[str, str]]], sync) -> dict[str, Any]:
    raise_nofile()
    _, end_at = common.client_ready(sync)
    return asyncio.run(_idle_fleet(assignments, end_at))


def measure(api: Any, env: dict[str, str], *, workers: int = WORKERS, jobs: int = JOBS, seed: int = 27,
            log) -> dict[str, Any]:
    creds = portal.create_workers(env, workers, prefix="wake-w")
    fleet.long_poll_enable(env)
    fleet.wait_drained(api)
    fleet.postpone_leftovers()
    urls = [s.url for s in api.servers]
    rng = random.Random(seed)
    gaps = [rng.uniform(*INTERVAL_S) for _ in range(jobs)]
    committed: dict[int, float] = {}
    with psycopg.connect(common.dsn(portal.DB), autocommit=True) as conn:
        insert = portal.ready_jobs_sql(conn)
        with common.Clients(1) as clients:
            clients.submit(idle_process, assignments=[(urls[i % len(urls)], c) for i, c in enumerate(creds)])
            # 3 s for every worker to be in its long poll; the last job gets 5 s to be claimed. The
            # jobs go in on a fixed schedule, so a slow INSERT does not push the last ones late.
            start_at, _ = clients.start(warmup_s=3.0, seconds=sum(gaps) + 5.0)
            at = start_at
            for gap in gaps:
                at += gap
                common.wait_until(at)
                (job_id,) = conn.execute(insert, [1]).fetchone()
                committed[job_id] = time.time()
            (result,) = clients.results(timeout=LONG_POLL_TIMEOUT_S + 60)
    first: dict[int, float] = {}
    for job_id, at in result["received"]:
        if job_id in committed and job_id not in first:
            first[job_id] = at
    latencies = [(first[j] - committed[j]) * 1000 for j in committed if j in first]
    missed = len(committed) - len(latencies)
    p99 = common.percentile(latencies, 99)
    r = {"workers": workers, "jobs": jobs, "claimed": len(latencies), "missed": missed,
         "p50_ms": round(common.percentile(latencies, 50), 1), "p99_ms": round(p99, 1),
         "max_ms": round(max(latencies, default=float("nan")), 1), "errors": result["errors"],
         "error_samples": result["error_samples"], "target_p99_ms": TARGET_P99_MS, "interval_s": list(INTERVAL_S), "long_poll_s": LONG_POLL_S,
         "server": api.kind, "server_processes": api.processes,
         "pass": bool(latencies) and p99 <= TARGET_P99_MS and not missed and not result["errors"]}
    log(f"wake-up: {r['claimed']} of {jobs} jobs claimed by {workers} idle long-polling workers, enqueue -> claim "
        f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms max {r['max_ms']} ms"
        + (f", errors {r['errors']} {r['error_samples'][:1]}" if r["errors"] else "") + (" PASS" if r["pass"] else " FAIL"))
    return r
