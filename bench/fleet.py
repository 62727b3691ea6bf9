"""Fleet capacity: how many simulated workers one node serves with pull p99 < 100 ms.

Each simulated worker behaves like the reference worker with its default timings: a signed heartbeat
every 30 s; a pull (`POST /jobs/exchange`, max 1) that, when it gets a job, is followed by 5-30 s of
"work" and then one exchange that reports the job (5 leads) and pulls the next; when it gets
nothing, the next pull 5 s later. Jobs arrive at half of what a fully busy fleet would take
(fleet / 35 per second, a job lasting 17.5 s on average, made with one `INSERT ... SELECT
generate_series` each second; the queue starts with jobs for half the fleet), so about half of the
fleet works and half polls idle.

The simulators are asyncio tasks in 2 client processes, signing with the bench's own client code
(`bench/miniclient.py`); every request opens its own connection (`Connection: close`), as a worker
that talks every few seconds would through a proxy's idle timeout. Pull latency is the client-side
time of every exchange (idle pulls and reports with their pull) inside the measured window; the
heartbeats are timed apart. The fleet grows step by step (two failing steps in a row end it); the result is the largest
step with pull p99 under 100 ms and no failed request.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import time
import uuid
from typing import Any

from bench import common, portal
from bench.common import client_ready
from bench.leads import LeadStream
from bench.miniclient import sign

TARGET_P99_MS = 100.0
TARGET_WORKERS = 1_000
CLIENT_PROCESSES = 2
HEARTBEAT_S = 30.0
IDLE_PULL_S = 5.0
JOB_S = (5.0, 30.0)


async def _request(host: str, port: int, path: str, payload: dict[str, Any], cred: dict[str, str]
                   ) -> tuple[int, dict[str, Any]]:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    full_path = "/api/v1" + path
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/json", "Connection": "close",
               "Content-Length": str(len(body)),
               **sign(method="POST", path=full_path, query="", body=body, worker_id=cred["worker_id"],
                      key_id=cred["key_id"], secret=cred["secret"])}
    head = f"POST {full_path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_bytes.lower():
        chunks, rest_view = [], rest
        while rest_view:
            size_line, _, rest_view = rest_view.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            chunks.append(rest_view[:size])
            rest_view = rest_view[size + 2:]
        rest = b"".join(chunks)
    try:
        return status, (json.loads(rest) if rest else {})
    except ValueError:
        return status, {"unparsed": rest[:300].decode(errors="replace")}


class _Stats:
    def __init__(self) -> None:
        self.pull_ms: list[float] = []
        self.heartbeat_ms: list[float] = []
        self.pulls = self.idle_pulls = self.reports = self.heartbeats = 0
        self.errors: dict[str, int] = {}
        self.samples: list[str] = []

    def error(self, key: str, detail: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(f"{key} {detail[:300]}")


async def _heartbeats(host: str, port: int, cred: dict[str, str], stats: _Stats, rng: random.Random,
                      start_at: float, end_at: float, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.time()))
    while time.time() < end_at:
        t0 = time.perf_counter()
        try:
            status, answer = await _request(host, port, "/heartbeat",
                                            {"version": "1.0.0", "status": "ok", "running_jobs": 0}, cred)
        except Exception as exc:
            stats.error(f"heartbeat:{type(exc).__name__}", repr(exc))
        else:
            if status >= 400:
                stats.error(f"heartbeat:{status}", json.dumps(answer)[:300])
            elif time.time() >= start_at:
                stats.heartbeats += 1
                stats.heartbeat_ms.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(HEARTBEAT_S)


async def _worker(host: str, port: int, cred: dict[str, str], stats: _Stats, stream: LeadStream,
                  rng: random.Random, start_at: float, end_at: float, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.time()))
    held: dict[str, Any] | None = None
    while time.time() < end_at:
        reports = [] if held is None else [{
            "job_id": held["id"], "attempt_id": held["attempt_id"], "idempotency_key": str(uuid.uuid4()),
            "outcome": "succeeded", "leads": stream.leads(5)}]
        t0 = time.perf_counter()
        try:
            status, answer = await _request(host, port, "/jobs/exchange", {"reports": reports, "pull": {"max": 1}},
                                            cred)
        except Exception as exc:
            stats.error(f"pull:{type(exc).__name__}", repr(exc))
            held = None
            await asyncio.sleep(IDLE_PULL_S)
            continue
        elapsed = (time.perf_counter() - t0) * 1000
        in_window = start_at <= time.time() <= end_at
        if status >= 400:
            stats.error(f"pull:{status}", json.dumps(answer)[:300])
            held = None
            await asyncio.sleep(IDLE_PULL_S)
            continue
        for result in answer.get("results") or []:
            if result.get("status") != 200:
                stats.error(f"item:{result.get('status')}", json.dumps(result)[:300])
            elif in_window:
                stats.reports += 1
        jobs = answer.get("jobs") or []
        if in_window:
            stats.pulls += 1
            stats.pull_ms.append(elapsed)
            stats.idle_pulls += 0 if jobs else 1
        held = jobs[0] if jobs else None
        await asyncio.sleep(rng.uniform(*JOB_S) if held else IDLE_PULL_S)


async def _fleet(base_url: str, creds: list[dict[str, str]], seed: int, stream_base: int, ramp_from: float,
                 start_at: float, end_at: float) -> _Stats:
    host, _, port = base_url.split("://", 1)[1].partition(":")
    stats = _Stats()
    rng = random.Random(seed)
    tasks = []
    for i, cred in enumerate(creds):
        stream = LeadStream(stream_base + i, stream_size=10_000)
        tasks.append(_worker(host, int(port), cred, stats, stream, random.Random(rng.random()), start_at, end_at,
                             ramp_from + rng.uniform(0, IDLE_PULL_S)))
        tasks.append(_heartbeats(host, int(port), cred, stats, rng, start_at, end_at,
                                 ramp_from + rng.uniform(0, HEARTBEAT_S)))
    await asyncio.gather(*tasks)
    return stats


def fleet_process(*, base_url: str, creds: list[dict[str, str]], seed: int, stream_base: int, ramp_s: float,
                  sync) -> dict[str, Any]:
    start_at, end_at = client_ready(sync)
    at_start = resource.getrusage(resource.RUSAGE_SELF)
    stats = asyncio.run(_fleet(base_url, creds, seed, stream_base, start_at - ramp_s, start_at, end_at))
    at_end = resource.getrusage(resource.RUSAGE_SELF)
    return {"pull_ms": stats.pull_ms, "heartbeat_ms": stats.heartbeat_ms, "pulls": stats.pulls,
            "idle_pulls": stats.idle_pulls, "reports": stats.reports, "heartbeats": stats.heartbeats,
            "errors": stats.errors, "samples": stats.samples,
            "cpu_s": (at_end.ru_utime + at_end.ru_stime) - (at_start.ru_utime + at_start.ru_stime)}


def _postpone_leftovers() -> None:
    """Ready jobs left by an earlier step move a year ahead: each step starts from its own supply."""
    import psycopg

    with psycopg.connect(common.dsn(portal.DB), autocommit=True) as conn:
        conn.execute("UPDATE queueing_job SET run_at = now() + interval '365 days' WHERE state = 'queued'")


def step(api: Any, creds: list[dict[str, str]], *, ramp_s: float, seconds: float) -> dict[str, Any]:
    size = len(creds)
    _postpone_leftovers()
    portal.clone_ready_jobs(max(1, size // 2))
    rate = size / 35.0
    per = (size + CLIENT_PROCESSES - 1) // CLIENT_PROCESSES
    url = api.servers[0].url
    with common.Clients(CLIENT_PROCESSES) as clients:
        for index in range(CLIENT_PROCESSES):
            clients.submit(fleet_process, base_url=url, creds=creds[index * per:(index + 1) * per],
                           seed=index + 1, stream_base=1 + index * per, ramp_s=ramp_s)
        # The ramp (workers' first pulls over 5 s, first heartbeats over 30 s) is the warm-up.
        start_at, end_at = clients.start(warmup_s=ramp_s, seconds=seconds)
        fed, owed, last = 0, 0.0, time.time()
        server0 = pg0 = None
        while time.time() < end_at:
            time.sleep(1.0)
            now = time.time()
            owed += rate * (now - last)
            last = now
            if owed >= 1:
                portal.clone_ready_jobs(int(owed))
                fed += int(owed)
                owed -= int(owed)
            if server0 is None and now >= start_at:
                server0 = common.cpu_snapshot([p for s in api.servers for p in s.pids()])
                pg0 = common.cpu_snapshot(common.postgres_pids(portal.DB))
                measured_from = now
        server1 = common.cpu_snapshot([p for s in api.servers for p in s.pids()])
        pg1 = common.cpu_snapshot(common.postgres_pids(portal.DB))
        measured_s = time.time() - measured_from
        results = clients.results(timeout=ramp_s + seconds + 180)
    pull_ms = [x for r in results for x in r["pull_ms"]]
    hb_ms = [x for r in results for x in r["heartbeat_ms"]]
    errors: dict[str, int] = {}
    for r in results:
        for key, value in r["errors"].items():
            errors[key] = errors.get(key, 0) + value
    p99 = common.percentile(pull_ms, 99)
    requests = sum(r["pulls"] + r["heartbeats"] for r in results)
    return {
        "workers": size, "seconds": seconds, "pulls": len(pull_ms), "idle_pulls": sum(r["idle_pulls"] for r in results),
        "reports": sum(r["reports"] for r in results), "heartbeats": len(hb_ms), "jobs_fed": fed,
        "requests_per_s": requests / seconds,
        "pull_p50_ms": common.percentile(pull_ms, 50), "pull_p99_ms": p99,
        "heartbeat_p50_ms": common.percentile(hb_ms, 50), "heartbeat_p99_ms": common.percentile(hb_ms, 99),
        "errors": errors, "error_samples": [s for r in results for s in r["samples"]][:5],
        "server_cpu_share": round(common.cpu_used(server0, server1) / measured_s / (os.cpu_count() or 1), 3)
        if server0 else None,
        "postgres_cpu_share": round(common.cpu_used(pg0, pg1) / measured_s / (os.cpu_count() or 1), 3)
        if pg0 else None,
        "client_cpu_share": round(sum(r["cpu_s"] for r in results) / (seconds + ramp_s) / (os.cpu_count() or 1), 3),
        "pass": bool(pull_ms) and p99 < TARGET_P99_MS and not errors,
    }


def measure(api: Any, env: dict[str, str], *, sizes: tuple[int, ...], ramp_s: float, seconds: float,
            log) -> dict[str, Any]:
    creds = portal.create_workers(env, max(sizes), prefix="fleet-w")
    steps = []
    for size in sizes:
        r = step(api, creds[:size], ramp_s=ramp_s, seconds=seconds)
        steps.append(r)
        log(f"fleet {size:,} workers: pull p50 {r['pull_p50_ms']:.1f} ms p99 {r['pull_p99_ms']:.1f} ms, "
            f"{r['requests_per_s']:.0f} requests/s, {r['pulls']} pulls ({r['idle_pulls']} idle), "
            f"server CPU {r['server_cpu_share']:.0%} of the machine" + (f", errors {r['errors']}" if r["errors"] else "")
            + (" PASS" if r["pass"] else " FAIL"))
        if not r["pass"] and len(steps) >= 2 and not steps[-2]["pass"]:
            break       # two failing steps in a row: the curve has been seen
    passing = [s["workers"] for s in steps if s["pass"]]
    largest = max(passing) if passing else 0
    return {"steps": steps, "largest_passing": largest, "target_workers": TARGET_WORKERS,
            "target_p99_ms": TARGET_P99_MS, "pass": largest >= TARGET_WORKERS, "server": api.kind,
            "server_processes": api.processes}
