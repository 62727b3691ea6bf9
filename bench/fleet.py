"""Fleet capacity: how many simulated workers one node serves with pull p99 < 100 ms.

Each simulated worker behaves like the reference worker with its default timings (the models are in
`bench/fleet_client.py`): `longpoll` (default, the worker of issue 27: exchange report + pull 1 after
a job, a 30 s long poll while idle, a heartbeat only after 30 s without a signed request) or `legacy`
(`--fleet-model legacy`: an empty pull every 5 s while idle, a heartbeat every 30 s). A job is
5-30 s of "work" and is reported with 5 leads. Jobs arrive at half of what a fully busy fleet would
take (fleet / 35 per second, a job lasting 17.5 s on average, made with one `INSERT ... SELECT
generate_series` each second; the queue starts with jobs for half the fleet), so about half of the
fleet works and half waits idle.

The simulated workers go round robin over the server's processes (`api.servers`, one port each), as
a load balancer would. Every step runs twice: `keepalive` (one persistent connection per worker, as
the reference worker keeps) and `close` (a connection per request). The clients start as 2
processes; a process that used more than 0.6 of a core in a step doubles the processes of the next
step of that mode (at most 8), so the clients are not the limit.

Per step: pull p50/p99 (the exchanges), long polls and heartbeats timed apart, idle requests per idle
worker-minute, client CPU per process and its event-loop lag, server and PostgreSQL CPU, server CPU
per request, and what PostgreSQL's sessions waited on (`bench/pg_sampler.py`). Steps grow to 4,000
workers; a mode that fails two steps in a row stops. The result per mode is the largest step with
pull p99 under 100 ms and no failed request.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench import common, portal
from bench.fleet_client import IDLE_PULL_S, LONG_POLL_S, fleet_process
from bench.pg_sampler import PgSampler

TARGET_P99_MS = 100.0
TARGET_WORKERS = 1_000
TARGET_IDLE_REQUESTS_PER_MIN = 2.0
CLIENT_PROCESSES = 2
MAX_CLIENT_PROCESSES = 8
CLIENT_BUSY_CORES = 0.6
MODES = ("keepalive", "close")
MODELS = ("longpoll", "legacy")


def long_poll_enable(env: dict[str, str], seconds: int = LONG_POLL_S) -> None:
    """The worker configuration lets pulls wait `seconds` (its default, 0, turns long polls off)."""
    code = ("from workers_mgmt.services import worker_config_get, worker_config_save\n"
            "c = worker_config_get()\n"
            f"if getattr(c, 'long_poll_wait_s', {seconds}) != {seconds}:\n"
            f"    c.long_poll_wait_s = {seconds}\n"
            "    worker_config_save(config=c)\n")
    portal.manage(env, "shell", "-c", code)


def postpone_leftovers() -> None:
    """Ready jobs left by an earlier step move a year ahead: each step starts from its own supply."""
    import psycopg

    with psycopg.connect(common.dsn(portal.DB), autocommit=True) as conn:
        conn.execute("UPDATE queueing_job SET run_at = now() + interval '365 days' WHERE state = 'queued'")


def server_pids(api: Any) -> list[int]:
    return [p for s in api.servers for p in s.pids()]


def server_connections(ports: list[int]) -> int:
    """TCP connections the server processes still hold on their ports (any state but listening and
    TIME_WAIT), from /proc/net/tcp: a request a client gave up on holds one until it answers."""
    wanted = {f"{port:04X}" for port in ports}
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    if fields[1].rsplit(":", 1)[1] in wanted and fields[3] not in ("0A", "06"):
                        count += 1
        except (OSError, StopIteration):
            continue
    return count


def wait_drained(api: Any, *, most_s: float = LONG_POLL_S + 5) -> float:
    """Wait until the server holds no connection and has used under 0.05 core for 2 s in a row (the
    long polls the clients left behind are over: a server that keeps polling for a request whose
    client has gone shows as CPU, not as a connection), at most `most_s`; returns the seconds waited.
    Else they would claim the next step's jobs and spend its CPU."""
    started = time.time()
    ports = [s.port for s in api.servers]
    quiet = 0
    before = common.cpu_snapshot(server_pids(api))
    while quiet < 2 and time.time() - started < most_s:
        time.sleep(1.0)
        after = common.cpu_snapshot(server_pids(api))
        busy = common.cpu_used(before, after) / max(0.01, after.wall - before.wall)
        quiet = quiet + 1 if busy < 0.05 and not server_connections(ports) else 0
        before = after
    return round(time.time() - started, 1)


def step(api: Any, creds: list[dict[str, str]], *, mode: str, model: str, processes: int, ramp_s: float,
         seconds: float) -> dict[str, Any]:
    size = len(creds)
    postpone_leftovers()
    portal.clone_ready_jobs(max(1, size // 2))
    rate = size / 35.0
    urls = [s.url for s in api.servers]
    # Round robin over the server processes by worker index, as a load balancer would.
    assignments = [(urls[i % len(urls)], cred) for i, cred in enumerate(creds)]
    per = (size + processes - 1) // processes
    with common.Clients(processes) as clients:
        for index in range(processes):
            clients.submit(fleet_process, assignments=assignments[index * per:(index + 1) * per], model=model,
                           keepalive=mode == "keepalive", seed=index + 1, stream_base=1 + index * per, ramp_s=ramp_s)
        # The ramp (workers' first pulls over 5 s, legacy heartbeats over 30 s) is the warm-up.
        start_at, end_at = clients.start(warmup_s=ramp_s, seconds=seconds)
        fed, owed, last = 0, 0.0, time.time()
        server0 = pg0 = sampler = None
        measured_from = start_at
        while time.time() < end_at:
            time.sleep(max(0.0, min(1.0, end_at - time.time())))
            now = time.time()
            owed += rate * (now - last)
            last = now
            if owed >= 1 and now < end_at:
                portal.clone_ready_jobs(int(owed))
                fed += int(owed)
                owed -= int(owed)
            if server0 is None and now >= start_at:
                server0 = common.cpu_snapshot(server_pids(api))
                pg0 = common.cpu_snapshot(common.postgres_pids(portal.DB))
                machine0 = common.machine_cpu_seconds()
                measured_from = now
                sampler = PgSampler(portal.DB)
                sampler.start()
        server1 = common.cpu_snapshot(server_pids(api))
        pg1 = common.cpu_snapshot(common.postgres_pids(portal.DB))
        machine1 = common.machine_cpu_seconds()
        measured_s = max(0.001, time.time() - measured_from)
        waits = sampler.stop() if sampler else None
        if model == "longpoll":
            # A job for every worker: the long polls still waiting answer now (a server cannot stop a
            # sync view whose client has gone, so one left waiting would claim the next step's jobs).
            portal.clone_ready_jobs(size)
        results = clients.results(timeout=ramp_s + seconds + 180)
    drain_s = wait_drained(api)
    return _step_result(results, size=size, mode=mode, model=model, processes=processes, seconds=seconds,
                        fed=fed, measured_s=measured_s, drain_s=drain_s, waits=waits,
                        server_cpu=common.cpu_used(server0, server1) if server0 else None,
                        pg_cpu=common.cpu_used(pg0, pg1) if pg0 else None,
                        machine_busy=(machine1 - machine0) if server0 else None)


def _step_result(results: list[dict[str, Any]], *, size: int, mode: str, model: str, processes: int,
                 seconds: float, fed: int, measured_s: float, drain_s: float, waits: dict[str, Any] | None,
                 server_cpu: float | None, pg_cpu: float | None, machine_busy: float | None) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    pull_ms = [x for r in results for x in r["pull_ms"]]
    hb_ms = [x for r in results for x in r["heartbeat_ms"]]
    lp_ms = [x for r in results for x in r["long_poll_ms"]]
    lag = [x for r in results for x in r["loop_lag_ms"]]
    errors: dict[str, int] = {}
    for r in results:
        for key, value in r["errors"].items():
            errors[key] = errors.get(key, 0) + value
    total = {key: sum(r[key] for r in results) for key in (
        "pulls", "idle_pulls", "reports", "heartbeats", "long_polls", "long_poll_jobs", "idle_requests", "idle_requests_with_job", "idle_s",
        "cut_at_end", "connects", "resends")}
    requests = total["pulls"] + total["heartbeats"] + total["long_polls"]
    p99 = common.percentile(pull_ms, 99)
    per_process = [round(r["cpu_s"] / seconds, 3) for r in results]
    idle_min = total["idle_s"] / 60
    return {
        "workers": size, "mode": mode, "model": model, "seconds": seconds, "jobs_fed": fed,
        "pulls": total["pulls"], "idle_pulls": total["idle_pulls"], "reports": total["reports"],
        "heartbeats": total["heartbeats"], "long_polls": total["long_polls"],
        "long_polls_with_job": total["long_poll_jobs"],
        "requests": requests, "requests_per_s": round(requests / seconds, 1),
        "pull_p50_ms": common.percentile(pull_ms, 50), "pull_p99_ms": p99, "pull_max_ms": max(pull_ms, default=None),
        "heartbeat_p50_ms": common.percentile(hb_ms, 50), "heartbeat_p99_ms": common.percentile(hb_ms, 99),
        "long_poll_p50_ms": common.percentile(lp_ms, 50), "long_poll_p99_ms": common.percentile(lp_ms, 99),
        "idle_worker_minutes": round(idle_min, 2), "idle_requests": total["idle_requests"],
        "idle_requests_with_job": total["idle_requests_with_job"],
        # what waiting costs: the idle requests that brought nothing (empty pulls and long polls,
        # heartbeats while idle), per idle worker-minute; `_all` also counts the one that brought a job
        "idle_requests_per_worker_min": round((total["idle_requests"] - total["idle_requests_with_job"]) / idle_min, 2)
        if idle_min else None,
        "idle_requests_per_worker_min_all": round(total["idle_requests"] / idle_min, 2) if idle_min else None,
        "errors": errors, "error_samples": [s for r in results for s in r["samples"]][:5],
        "workers_cut_at_end": total["cut_at_end"], "connections_opened": total["connects"],
        "keepalive_resends": total["resends"],
        "client_processes": processes, "client_cpu_per_process": per_process,
        "client_loop_lag_p50_ms": common.percentile(lag, 50), "client_loop_lag_p99_ms": common.percentile(lag, 99),
        "client_cpu_share": round(sum(r["cpu_s"] for r in results) / seconds / cores, 3),
        "server_cpu_share": None if server_cpu is None else round(server_cpu / measured_s / cores, 3),
        "postgres_cpu_share": None if pg_cpu is None else round(pg_cpu / measured_s / cores, 3),
        "machine_busy_share": None if machine_busy is None else round(machine_busy / measured_s / cores, 3),
        "server_cpu_ms_per_request": None if server_cpu is None or not requests
        else round(server_cpu * 1000 / (requests * measured_s / seconds), 2),
        "postgres_cpu_ms_per_request": None if pg_cpu is None or not requests
        else round(pg_cpu * 1000 / (requests * measured_s / seconds), 2),
        "pg_waits": waits, "locks_waiting_max": None if waits is None else waits.get("locks_waiting_max"),
        "drain_wait_s": drain_s,
        "pass": bool(pull_ms) and p99 < TARGET_P99_MS and not errors,
    }


def step_line(r: dict[str, Any]) -> str:
    waits = r["pg_waits"] or {}
    top = ", ".join(f"{k} {v / max(1, waits.get('samples', 1)):.2f}" for k, v in list(waits.get("by_wait", {}).items())[:3])
    return (f"fleet {r['workers']:,} {r['mode']:9}: pull p50 {r['pull_p50_ms']:.1f} ms p99 {r['pull_p99_ms']:.1f} ms, "
            f"{r['requests_per_s']:.0f} req/s ({r['pulls']} pulls, {r['long_polls']} long polls, "
            f"{r['heartbeats']} heartbeats), idle req/worker-min {r['idle_requests_per_worker_min']}, "
            f"server {r['server_cpu_share']:.0%} ({r['server_cpu_ms_per_request']} ms/req), "
            f"pg {r['postgres_cpu_share']:.0%}, clients {r['client_processes']}x "
            f"{max(r['client_cpu_per_process'], default=0):.2f} core (lag p99 {r['client_loop_lag_p99_ms']:.0f} ms), "
            f"pg active {waits.get('active_mean')} [{top}], locks waiting max {r['locks_waiting_max']}"
            + (f", errors {r['errors']}" if r["errors"] else "") + (" PASS" if r["pass"] else " FAIL"))


def measure(api: Any, env: dict[str, str], *, sizes: tuple[int, ...], ramp_s: float, seconds: float,
            log, model: str = "longpoll", modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    creds = portal.create_workers(env, max(sizes), prefix="fleet-w")
    if model == "longpoll":
        long_poll_enable(env)
    steps: list[dict[str, Any]] = []
    processes = dict.fromkeys(modes, CLIENT_PROCESSES)
    failing = dict.fromkeys(modes, 0)
    for size in sizes:
        for mode in modes:
            if failing[mode] >= 2:
                continue        # two failing steps in a row: this mode's curve has been seen
            r = step(api, creds[:size], mode=mode, model=model, processes=processes[mode],
                     ramp_s=max(ramp_s, IDLE_PULL_S), seconds=seconds)
            steps.append(r)
            log(step_line(r))
            failing[mode] = 0 if r["pass"] else failing[mode] + 1
            if max(r["client_cpu_per_process"], default=0) > CLIENT_BUSY_CORES:
                processes[mode] = min(MAX_CLIENT_PROCESSES, processes[mode] * 2)
        if all(failing[mode] >= 2 for mode in modes):
            break
    largest = {}
    for mode in modes:
        passing = [s["workers"] for s in steps if s["mode"] == mode and s["pass"]]
        largest[mode] = max(passing) if passing else 0
    return {"steps": steps, "model": model, "modes": list(modes), "largest_passing": largest,
            "target_workers": TARGET_WORKERS, "target_p99_ms": TARGET_P99_MS,
            "target_idle_requests_per_worker_min": TARGET_IDLE_REQUESTS_PER_MIN,
            "pass": {mode: largest[mode] >= TARGET_WORKERS for mode in modes},
            "server": api.kind, "server_processes": api.processes}
