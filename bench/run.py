"""`make bench`: the job path and ingestion of LeadOps on PostgreSQL, beside the raw-SQL ceiling
and Procrastinate, in one run; one table on stdout, the same as JSON in bench/results/<date>.json.

    .venv/bin/python -m bench.run                  # everything (about 6-8 minutes on 2 cores)
    .venv/bin/python -m bench.run --quick          # a smoke run: a few seconds per metric
    .venv/bin/python -m bench.run --only jobs      # raw | peer | servers | jobs | ingest | claim | heartbeat | fleet | wakeup
                                                   # | pipeline | monitor | live | alerts

See docs/PERFORMANCE.md for what each number means and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (
    alert_latency,
    claim_cost,
    common,
    fleet,
    fleet_client,
    live_latency,
    monitor_pages,
    peer,
    portal,
    raw_ingest,
    raw_queue,
    wakeup,
)
from bench import servers as server_choice
from bench.api_load import STREAMS, client_kind_available, client_process
from leadops.servers import CHOSEN, KINDS

SECTIONS = ("raw", "peer", "servers", "jobs", "ingest", "claim", "heartbeat", "fleet", "wakeup", "pipeline", "monitor",
            "live", "alerts")
API_SECTIONS = {"servers", "jobs", "ingest", "claim", "heartbeat", "fleet", "wakeup", "pipeline"}
RESULTS_DIR = Path(__file__).resolve().parent / "results"

WORKERS = 16
CLIENT_PROCESSES = 4
LEADS_PER_JOB = 5
LEADS_PER_INGEST_REPORT = 500

TARGET_BATCH10 = 2_000.0
TARGET_EXCHANGE_SHARE = 0.10
TARGET_INGEST = 10_000.0
TARGET_INGEST_SHARE = 0.35
TARGET_HEARTBEAT_CPU_MS = 1.5
TARGET_CLAIM_P99_MS = 20.0
TARGET_CLAIM_RATIO = 1.2
CLAIM_SIZES = (10_000, 1_000_000)


@dataclass(frozen=True)
class Plan:
    quick: bool
    runs: int
    api_seconds: float
    trial_seconds: float
    raw_seconds: float
    peer_jobs: int
    peer_runs: int
    server_seconds: float
    claim_seconds: float
    claim_sizes: tuple[int, ...]
    fleet_sizes: tuple[int, ...]
    fleet_ramp_s: float
    fleet_seconds: float

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, runs=1, api_seconds=3, trial_seconds=2, raw_seconds=2, peer_jobs=300,
                       peer_runs=1, server_seconds=3, claim_seconds=2, claim_sizes=(10_000, 100_000),
                       fleet_sizes=(100, 250), fleet_ramp_s=5, fleet_seconds=8)
        return cls(quick=False, runs=3, api_seconds=10, trial_seconds=6, raw_seconds=5, peer_jobs=1_500,
                   peer_runs=3, server_seconds=8, claim_seconds=5, claim_sizes=CLAIM_SIZES,
                   fleet_sizes=(100, 250, 500, 1_000, 2_000, 4_000), fleet_ramp_s=10, fleet_seconds=30)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the API: one measured window --------------------------------------------------------------------


class Api:
    """The portal under test and its fleet of bench workers."""

    def __init__(self, *, redis: bool, pool: bool, client: str, profile_dir: Path | None, kind: str = CHOSEN) -> None:
        self.log_dir = portal.new_log_dir()
        self.env = portal.bench_env(redis=redis, pool=pool, log_dir=self.log_dir)
        self.redis = redis
        self.pool = pool
        self.client = client_kind_available(client)
        self.profile_dir = profile_dir
        self.servers: list[portal.Server] = []
        self.kind = kind
        self.creds: list[dict[str, str]] = []
        self.stream_counter = 0
        self.profiles: dict[str, dict[str, float]] = {}

    def setup(self) -> None:
        log(f"portal: fresh database {portal.DB}, migrate (production settings, DEBUG=False)")
        portal.setup_database(self.env)
        log(f"portal: {WORKERS} workers through create_worker --rate-limit 1000000 --json")
        self.creds = portal.create_workers(self.env, WORKERS)

    def start(self, processes: int, kind: str | None = None) -> None:
        """Serve the portal with `kind` (default: the chosen server) in `processes` processes.

        daphne runs one process per port (the clients spread over the ports as a proxy would); the
        others run their own worker processes behind one port.
        """
        self.stop()
        self.kind = kind or self.kind
        if self.kind == "daphne":
            self.servers = [portal.Server(self.env, self.log_dir, kind="daphne") for _ in range(processes)]
        else:
            self.servers = [portal.Server(self.env, self.log_dir, kind=self.kind, processes=processes)]
        for server in self.servers:
            server.wait_ready()
        log(f"{self.kind} x{processes} on port(s) {', '.join(str(d.port) for d in self.servers)}")

    @property
    def processes(self) -> int:
        return sum(server.processes for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []

    def window(self, *, batch: int, seconds: float, leads_per_job: int, expected_jobs_per_s: float,
               profile_name: str | None = None, mode: str = "v1") -> dict[str, Any]:
        """Top the queue up, run the fleet for `seconds`, return what completed inside the window."""
        wanted = int(expected_jobs_per_s * seconds * 1.6) + WORKERS * batch * 2 + 50
        added = portal.top_up(self.env, wanted)
        per_process = WORKERS // CLIENT_PROCESSES
        urls = [d.url for d in self.servers]
        with common.Clients(CLIENT_PROCESSES) as clients:
            for index in range(CLIENT_PROCESSES):
                creds = self.creds[index * per_process:(index + 1) * per_process]
                # Streams are reused in turn after STREAMS (a long run has hundreds of windows).
                stream_base = 1 + self.stream_counter % (STREAMS - per_process)
                self.stream_counter += per_process
                ready_made = 0
                if leads_per_job >= 100:
                    # Enough ready-made reports for the expected rate, with room to spare.
                    ready_made = int(expected_jobs_per_s * seconds * 1.5 / WORKERS) + 2
                clients.submit(client_process, index=index, kind=self.client, creds=creds, base_urls=urls,
                               batch=batch, leads_per_job=leads_per_job, stream_base=stream_base,
                               ready_made_reports=ready_made, mode=mode)
            # One second of warm-up traffic (connections, caches) before the clock starts.
            start_at, end_at = clients.start(warmup_s=1.0, seconds=seconds)
            profilers = self._profilers(profile_name, start_at, seconds) if profile_name else []
            common.wait_until(start_at)
            pids = [pid for server in self.servers for pid in server.pids()]
            server0 = common.cpu_snapshot(pids)
            pg0 = common.cpu_snapshot(common.postgres_pids(portal.DB))
            machine0 = common.machine_cpu_seconds()
            db0 = portal.db_stats()
            common.wait_until(end_at)
            server1 = common.cpu_snapshot([pid for server in self.servers for pid in server.pids()])
            pg1 = common.cpu_snapshot(common.postgres_pids(portal.DB))
            machine1 = common.machine_cpu_seconds()
            db1 = portal.db_stats()
            load = os.getloadavg()[0]
            results = clients.results(timeout=seconds + 180)
        for proc in profilers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if profilers:
            from bench import hotspots

            files = [str(p) for p in sorted(self.profile_dir.glob(f"{profile_name}-server*.txt"))]
            if files:
                self.profiles[profile_name] = {k: round(v, 4) for k, v in hotspots.summarize(files).items()}
        jobs = sum(r["jobs"] for r in results)
        leads = sum(r["leads"] for r in results)
        pull_ms = [x for r in results for x in r["pull_ms"]]
        report_ms = [x for r in results for x in r["report_ms"]]
        errors: dict[str, int] = {}
        samples: list[str] = []
        for r in results:
            for key, value in r["errors"].items():
                errors[key] = errors.get(key, 0) + value
            samples.extend(r["error_samples"])
        counts = {name: sum(r["counts"].get(name, 0) for r in results) for name in ("added", "duplicates", "invalid")}
        server_cpu = common.cpu_used(server0, server1)
        pg_cpu = common.cpu_used(pg0, pg1)
        client_cpu = sum(r["cpu_s"] for r in results)
        busy = machine1 - machine0
        db_delta = {k: db1[k] - db0[k] for k in db0}
        empty = sum(r["empty_pulls"] for r in results)
        return {
            "batch": batch, "seconds": seconds, "server": self.kind, "server_processes": self.processes,
            "jobs": jobs, "jobs_per_s": jobs / seconds, "leads": leads, "leads_per_s": leads / seconds,
            "pulls": sum(r["pulls"] for r in results), "empty_pulls": empty, "queue_ran_dry": empty > 0,
            "pull_ms": pull_ms, "report_ms": report_ms,
            "counts": counts, "errors": errors, "error_samples": samples[:5], "jobs_enqueued_before": added,
            "cpu_s": {"server": round(server_cpu, 2), "postgres": round(pg_cpu, 2), "clients": round(client_cpu, 2),
                      # everything else on the machine: other people's work on a shared host
                      "other": round(max(0.0, busy - server_cpu - pg_cpu - client_cpu), 2),
                      "machine_busy": round(busy, 2), "machine_capacity": round(seconds * (os.cpu_count() or 1), 2)},
            "load_average_1m": round(load, 2),
            "db": db_delta,
        }

    def _profilers(self, name: str, start_at: float, seconds: float) -> list[subprocess.Popen]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not self.profile_dir or not Path(spy).exists():
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        procs = []
        delay = max(0.0, start_at - time.time())
        for server in self.servers:
            out = self.profile_dir / f"{name}-server{server.port}.txt"
            cmd = (f"sleep {delay:.2f}; exec {spy} record --nonblocking --gil --rate 250 --format raw "
                   f"--subprocesses --duration {int(seconds)} --pid {server.pid} --output {out}")
            procs.append(subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return procs


def summarize_windows(windows: list[dict[str, Any]], *, rate_key: str) -> dict[str, Any]:
    rates = [w[rate_key] for w in windows]
    pull_ms = [x for w in windows for x in w["pull_ms"]]
    report_ms = [x for w in windows for x in w["report_ms"]]
    jobs = sum(w["jobs"] for w in windows) or 1
    cpu = {k: sum(w["cpu_s"][k] for w in windows) for k in windows[0]["cpu_s"]}
    db = {k: sum(w["db"][k] for w in windows) for k in windows[0]["db"]}
    errors: dict[str, int] = {}
    for w in windows:
        for key, value in w["errors"].items():
            errors[key] = errors.get(key, 0) + value
    counts = {k: sum(w["counts"][k] for w in windows) for k in ("added", "duplicates", "invalid")}
    total = sum(counts.values()) or 1
    return {
        rate_key: common.median(rates), "runs": rates, "spread": common.spread(rates),
        "pull_p50_ms": common.percentile(pull_ms, 50), "pull_p99_ms": common.percentile(pull_ms, 99),
        "report_p50_ms": common.percentile(report_ms, 50), "report_p99_ms": common.percentile(report_ms, 99),
        "errors": errors, "error_samples": [s for w in windows for s in w["error_samples"]][:5],
        "queue_ran_dry": any(w["queue_ran_dry"] for w in windows),
        "lead_counts": counts, "duplicate_share": counts["duplicates"] / total,
        "per_job": {
            "server_cpu_ms": round(cpu["server"] * 1000 / jobs, 3),
            "postgres_cpu_ms": round(cpu["postgres"] * 1000 / jobs, 3),
            "client_cpu_ms": round(cpu["clients"] * 1000 / jobs, 3),
            "db_commits": round(db["xact_commit"] / jobs, 2),
            "rows_inserted": round(db["tup_inserted"] / jobs, 2),
            "rows_updated": round(db["tup_updated"] / jobs, 2),
        },
        "cpu_share": {k: round(cpu[k] / cpu["machine_capacity"], 3)
                      for k in ("server", "postgres", "clients", "other", "machine_busy")},
        "windows": [{k: v for k, v in w.items() if k not in ("pull_ms", "report_ms")} for w in windows],
    }


def measure_jobs(api: Api, plan: Plan, processes_choice: str, results: dict[str, Any]) -> None:
    expected = {1: 300.0, 10: 600.0}
    if processes_choice == "auto":
        trials = {}
        for processes in (1, 2):
            api.start(processes)
            w = api.window(batch=1, seconds=plan.trial_seconds, leads_per_job=LEADS_PER_JOB,
                           expected_jobs_per_s=expected[1])
            trials[processes] = w["jobs_per_s"]
            expected[1] = max(expected[1], w["jobs_per_s"] * 1.3)
            log(f"trial: {api.kind} x{processes}, batch 1: {w['jobs_per_s']:.0f} jobs/s")
        chosen = max(trials, key=lambda k: trials[k])
        results["processes"] = {"server": api.kind, "chosen": chosen, "trial_batch1_jobs_per_s": trials,
                                "how": "trial at batch 1, higher wins"}
    else:
        chosen = int(processes_choice)
        results["processes"] = {"server": api.kind, "chosen": chosen, "how": "--processes"}
    if api.processes != chosen:
        api.start(chosen)
    for batch in (1, 10):
        if batch == 10:
            expected[10] = max(expected[10], results.get("batch1", {}).get("jobs_per_s", 0) * 4)
        windows = []
        for run in range(plan.runs):
            w = api.window(batch=batch, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                           expected_jobs_per_s=expected[batch])
            if w["queue_ran_dry"]:
                log("  the queue ran dry during the run; repeating it with more jobs")
                expected[batch] = w["jobs_per_s"] * 3 + 500
                w = api.window(batch=batch, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                               expected_jobs_per_s=expected[batch])
            expected[batch] = max(expected[batch], w["jobs_per_s"] * 1.3)
            windows.append(w)
            log(f"jobs batch {batch} run {run + 1}: {w['jobs_per_s']:.0f} jobs/s, pull p50 "
                f"{common.percentile(w['pull_ms'], 50):.1f} ms p99 {common.percentile(w['pull_ms'], 99):.1f} ms"
                + (f", errors {w['errors']}" if w["errors"] else ""))
        if api.profile_dir:
            api.window(batch=batch, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                       expected_jobs_per_s=expected[batch], profile_name=f"jobs-batch{batch}")
        results[f"batch{batch}"] = summarize_windows(windows, rate_key="jobs_per_s")
    # Protocol v1.1: each round trip reports the 10 jobs held and pulls 10 more (5 leads per job).
    expected["exchange"] = max(600.0, results.get("batch10", {}).get("jobs_per_s", 0) * 3)
    windows = []
    for run in range(plan.runs):
        w = api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                       expected_jobs_per_s=expected["exchange"], mode="exchange")
        if w["queue_ran_dry"]:
            log("  the queue ran dry during the run; repeating it with more jobs")
            expected["exchange"] = w["jobs_per_s"] * 3 + 500
            w = api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                           expected_jobs_per_s=expected["exchange"], mode="exchange")
        expected["exchange"] = max(expected["exchange"], w["jobs_per_s"] * 1.3)
        windows.append(w)
        log(f"jobs exchange 10+10 run {run + 1}: {w['jobs_per_s']:.0f} jobs/s, round trip p50 "
            f"{common.percentile(w['pull_ms'], 50):.1f} ms p99 {common.percentile(w['pull_ms'], 99):.1f} ms"
            + (f", errors {w['errors']}" if w["errors"] else ""))
    if api.profile_dir:
        api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                   expected_jobs_per_s=expected["exchange"], profile_name="jobs-exchange10", mode="exchange")
    results["exchange10"] = summarize_windows(windows, rate_key="jobs_per_s")


def measure_pipeline(api: Api, plan: Plan, *, fleet_sizes: tuple[int, ...]) -> dict[str, Any]:
    """The exchange 10+10 (and fleet steps, keep-alive) with the pipelined transactions on and off,
    alternating in one run on freshly started servers (docs/PERFORMANCE.md, "Round trips")."""
    processes = os.cpu_count() or 1
    expected = 900.0
    windows: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    steps: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    fleet_creds = portal.create_workers(api.env, max(fleet_sizes), prefix="pipe-w") if fleet_sizes else []
    if fleet_sizes:
        fleet.long_poll_enable(api.env)
    for run in range(plan.runs):
        for setting in ("on", "off") if run % 2 == 0 else ("off", "on"):
            api.env["LEADOPS_DB_PIPELINE"] = "true" if setting == "on" else "false"
            api.start(processes)
            w = api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_JOB,
                           expected_jobs_per_s=expected, mode="exchange")
            expected = max(expected, w["jobs_per_s"] * 1.3)
            windows[setting].append(w)
            log(f"pipeline {setting:3}: exchange 10+10 run {run + 1}: {w['jobs_per_s']:.0f} jobs/s, round trip p50 "
                f"{common.percentile(w['pull_ms'], 50):.1f} ms p99 {common.percentile(w['pull_ms'], 99):.1f} ms, "
                f"server CPU {w['cpu_s']['server'] * 1000 / max(1, w['jobs']):.2f} ms/job"
                + (f", errors {w['errors']}" if w["errors"] else ""))
            for size in fleet_sizes:
                api.start(processes)
                r = fleet.step(api, fleet_creds[:size], mode="keepalive", model="longpoll",
                               processes=fleet.CLIENT_PROCESSES, ramp_s=max(plan.fleet_ramp_s, fleet.IDLE_PULL_S),
                               seconds=plan.fleet_seconds)
                r["pipeline"] = setting
                steps[setting].append(r)
                log(f"pipeline {setting:3}: " + fleet.step_line(r))
    api.env.pop("LEADOPS_DB_PIPELINE", None)
    api.stop()
    out: dict[str, Any] = {}
    for setting in ("on", "off"):
        out[setting] = {"exchange10": summarize_windows(windows[setting], rate_key="jobs_per_s"),
                        "fleet_steps": steps[setting]}
    on, off = out["on"]["exchange10"]["jobs_per_s"], out["off"]["exchange10"]["jobs_per_s"]
    out["exchange_ratio_on_off"] = round(on / off, 3) if off else None
    return out


def measure_ingest(api: Api, plan: Plan, processes_choice: str, results: dict[str, Any],
                   raw_results: dict[str, Any] | None = None) -> None:
    """LeadOps ingestion runs, each right after one run of the raw ceiling when `raw_results` is given.

    The shared host's speed drifts by tens of percent over minutes; a ceiling measured a few minutes
    before LeadOps moved the share between 30% and 48% with the same code. Alternating the two and
    taking the median of each pair's ratio lets a slow minute weigh on both sides of its pair.
    """
    if not api.servers:
        api.start(2 if processes_choice == "auto" else int(processes_choice))
    windows = []
    ceilings: list[dict[str, Any]] = []
    expected_jobs = 20.0
    for run in range(plan.runs):
        if raw_results is not None:
            ceiling = raw_ingest.measure(seconds=plan.raw_seconds, runs=1, processes=4, first_run=run)
            ceilings.append(ceiling)
            log(f"raw ingest ceiling run {run + 1}: {ceiling['leads_per_s']:,.0f} leads/s")
        w = api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_INGEST_REPORT,
                       expected_jobs_per_s=expected_jobs)
        expected_jobs = max(expected_jobs, w["jobs_per_s"] * 1.3)
        windows.append(w)
        log(f"ingest run {run + 1}: {w['leads_per_s']:.0f} leads/s ({w['jobs_per_s']:.1f} reports/s), "
            f"report p50 {common.percentile(w['report_ms'], 50):.0f} ms" + (f", errors {w['errors']}" if w["errors"] else ""))
    if api.profile_dir:
        api.window(batch=10, seconds=plan.api_seconds, leads_per_job=LEADS_PER_INGEST_REPORT,
                   expected_jobs_per_s=expected_jobs, profile_name="ingest")
    results.update(summarize_windows(windows, rate_key="leads_per_s"))
    results["server"] = api.kind
    results["server_processes"] = api.processes
    results["leads_per_report"] = LEADS_PER_INGEST_REPORT
    if raw_results is not None and ceilings:
        rates = [c["leads_per_s"] for c in ceilings]
        raw_results.update({"processes": ceilings[0]["processes"], "batch": ceilings[0]["batch"],
                            "leads_per_s": common.median(rates), "runs": rates,
                            "spread": common.spread(rates), "samples": [c["samples"][0] for c in ceilings],
                            "interleaved_with_api_runs": True})
        shares = [w["leads_per_s"] / c for w, c in zip(windows, rates, strict=True) if c]
        results["share_of_ceiling_runs"] = shares
        results["share_of_ceiling"] = common.median(shares) if shares else None


def _errors_merged(windows: list[dict[str, Any]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for w in windows:
        for kind, count in (w["errors"] or {}).items():
            merged[kind] = merged.get(kind, 0) + count
    return merged


def measure_heartbeat(api: Api, plan: Plan, servers_res: dict[str, Any] | None, server: str) -> dict[str, Any]:
    """Server CPU per signed heartbeat on the chosen server: the servers section's number when it ran
    in this run, else one window of the 16 bench workers sending heartbeats back to back."""
    cell = ((servers_res or {}).get("table") or {}).get(server, {}).get("heartbeat") or {}
    if cell.get("server_cpu_ms") is not None:
        r = {"server_cpu_ms": cell["server_cpu_ms"], "per_s": cell["per_s"], "errors": cell["errors"],
             "source": "servers section (medians of its runs)"}
    else:
        # The median window of `plan.runs`: one 8 s window on a shared host moves by 10-20%.
        windows = [api.window(batch=1, seconds=plan.server_seconds, leads_per_job=LEADS_PER_JOB,
                              expected_jobs_per_s=0.0, mode="heartbeat") for _ in range(plan.runs)]
        if api.profile_dir:     # py-spy on a window of its own, so no measured one carries the profiler
            api.window(batch=1, seconds=plan.server_seconds, leads_per_job=LEADS_PER_JOB, expected_jobs_per_s=0.0,
                       mode="heartbeat", profile_name="heartbeat")
        per = [round(w["cpu_s"]["server"] * 1000 / w["jobs"], 3) if w["jobs"] else float("inf") for w in windows]
        w = windows[sorted(range(len(windows)), key=per.__getitem__)[len(windows) // 2]]
        r = {"server_cpu_ms": round(w["cpu_s"]["server"] * 1000 / w["jobs"], 3) if w["jobs"] else None,
             "postgres_cpu_ms": round(w["cpu_s"]["postgres"] * 1000 / w["jobs"], 3) if w["jobs"] else None,
             "per_s": w["jobs_per_s"], "errors": _errors_merged(windows),
             "p50_ms": common.percentile(w["pull_ms"], 50), "p99_ms": common.percentile(w["pull_ms"], 99),
             "runs_server_cpu_ms": [None if p == float("inf") else p for p in per],
             "source": f"median of {len(windows)} windows of {plan.server_seconds:.0f} s"}
    r.update({"server": server, "server_processes": api.processes, "target_ms": TARGET_HEARTBEAT_CPU_MS,
              "pass": r["server_cpu_ms"] is not None and r["server_cpu_ms"] <= TARGET_HEARTBEAT_CPU_MS
              and not r["errors"]})
    log(f"heartbeat: {r['server_cpu_ms']} ms of server CPU each ({server} x{api.processes}, {r['per_s']:.0f}/s; "
        f"{r['source']})" + (f", errors {r['errors']}" if r["errors"] else ""))
    return r


def measure_queries(api: Api) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.queries"], cwd=common.ROOT, env=api.env,
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:] or proc.stdout[-2000:])
    return json.loads(proc.stdout)


# --- the table ------------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def build_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    api = res.get("api", {})
    raw = res.get("raw", {})
    peer_res = res.get("peer", {})
    rows: list[dict[str, Any]] = []

    def get(d: dict[str, Any], *path: str) -> float | None:
        for key in path:
            if not isinstance(d, dict) or key not in d:
                return None
            d = d[key]
        return d

    peer2 = get(peer_res, "two_processes", "jobs_per_s")
    peer1 = get(peer_res, "one_process", "jobs_per_s")
    b1 = get(api, "batch1", "jobs_per_s")
    b10 = get(api, "batch10", "jobs_per_s")
    raw1 = get(raw, "queue_batch1", "jobs_per_s")
    raw10 = get(raw, "queue_batch10", "jobs_per_s")
    rows.append({"metric": "jobs/s, batch 1 (pull + report, 5 leads)", "leadops": b1, "ceiling": raw1, "peer": peer2,
                 "ratio": _ratio(b1, raw1), "target": "≥ peer (Procrastinate 2×8)",
                 "pass": None if b1 is None or peer2 is None else b1 >= peer2, "unit": "jobs/s"})
    rows.append({"metric": "jobs/s, batch 10", "leadops": b10, "ceiling": raw10, "peer": None,
                 "ratio": _ratio(b10, raw10), "target": f"≥ {TARGET_BATCH10:,.0f}",
                 "pass": None if b10 is None else b10 >= TARGET_BATCH10, "unit": "jobs/s"})
    ex = get(api, "exchange10", "jobs_per_s")
    rows.append({"metric": "jobs/s, exchange (10 reports + pull 10 per round trip, 5 leads)", "leadops": ex,
                 "ceiling": raw10, "peer": peer2, "ratio": _ratio(ex, raw10),
                 "target": f"≥ {TARGET_EXCHANGE_SHARE:.0%} of ceiling and ≥ 3× peer",
                 "pass": None if ex is None or raw10 is None or peer2 is None
                 else ex >= TARGET_EXCHANGE_SHARE * raw10 and ex >= 3 * peer2, "unit": "jobs/s"})
    pipe = res.get("pipeline") or {}
    if pipe:
        on = get(pipe, "on", "exchange10", "jobs_per_s")
        off = get(pipe, "off", "exchange10", "jobs_per_s")
        rows.append({"metric": "jobs/s, exchange 10+10: pipelined transactions on (leadops) / off (peer column)",
                     "leadops": on, "ceiling": raw10, "peer": off, "ratio": _ratio(on, off),
                     "target": f"≥ {TARGET_EXCHANGE_SHARE:.0%} of ceiling and ≥ 3× peer", "pass": None,
                     "unit": "jobs/s"})
        for setting in ("on", "off"):
            for r in pipe[setting]["fleet_steps"]:
                rows.append({"metric": f"fleet {r['workers']:,} keep-alive, pull p99 ms (pipeline {setting})",
                             "leadops": r["pull_p99_ms"], "ceiling": None, "peer": None, "ratio": None,
                             "target": "< 100 ms", "pass": r["pass"], "unit": "ms"})
    for key, label in (("batch1", "v1 batch 1"), ("exchange10", "exchange 10+10")):
        server_ms = get(api, key, "per_job", "server_cpu_ms")
        pg_ms = get(api, key, "per_job", "postgres_cpu_ms")
        rows.append({"metric": f"CPU ms per job, server / PostgreSQL ({label}, {api.get('server', '?')})",
                     "leadops": None if server_ms is None else f"{server_ms:.2f} / {pg_ms:.2f}", "ceiling": None,
                     "peer": None, "ratio": None, "target": "-", "pass": None, "unit": "ms"})
    heartbeat = res.get("heartbeat") or {}
    if not heartbeat:       # the servers section alone: its chosen server's heartbeat
        servers_res = res.get("servers") or {}
        cpu = get(servers_res, "table", servers_res.get("chosen", ""), "heartbeat", "server_cpu_ms")
        if cpu is not None:
            heartbeat = {"server_cpu_ms": cpu, "server": servers_res["chosen"],
                         "pass": cpu <= TARGET_HEARTBEAT_CPU_MS}
    heartbeat_ms = heartbeat.get("server_cpu_ms")
    rows.append({"metric": f"signed heartbeat: server CPU ms ({heartbeat.get('server', '-')})",
                 "leadops": heartbeat_ms, "ceiling": None, "peer": None, "ratio": None,
                 "target": f"≤ {TARGET_HEARTBEAT_CPU_MS} ms",
                 "pass": None if heartbeat_ms is None else heartbeat["pass"], "unit": "ms"})
    claim = res.get("claim") or {}
    sizes = list((claim.get("sizes") or {}).keys())
    if sizes:
        small, large = claim["sizes"][sizes[0]], claim["sizes"][sizes[-1]]
        rows.append({"metric": f"claim p50 / p99 ms, 16 workers, {int(sizes[0]):,} ready (jobs_pull, no HTTP)",
                     "leadops": f"{small['p50_ms']:.1f} / {small['p99_ms']:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": f"p99 ≤ {TARGET_CLAIM_P99_MS:.0f} ms",
                     "pass": small["p99_ms"] <= TARGET_CLAIM_P99_MS, "unit": "ms"})
        rows.append({"metric": f"claim p50 / p99 ms, 16 workers, {int(sizes[-1]):,} ready",
                     "leadops": f"{large['p50_ms']:.1f} / {large['p99_ms']:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": f"p99 ≤ {TARGET_CLAIM_P99_MS:.0f} ms",
                     "pass": large["p99_ms"] <= TARGET_CLAIM_P99_MS, "unit": "ms"})
        # Both readings of "cost", each against the target: PostgreSQL's CPU per claim (steady) and the
        # claim's p50 latency (what a worker waits; moves with the host's load).
        for key, what in (("cost_ratio_postgres_cpu", "PostgreSQL CPU per claim"), ("cost_ratio_p50", "p50 latency")):
            ratio = claim[key]
            rows.append({"metric": f"claim cost, {int(sizes[-1]):,} vs {int(sizes[0]):,} ready ({what})",
                         "leadops": f"{ratio:.2f}x", "ceiling": None, "peer": None, "ratio": None,
                         "target": f"≤ {TARGET_CLAIM_RATIO}x", "pass": ratio <= TARGET_CLAIM_RATIO, "unit": "ms"})
    fleet_res = res.get("fleet") or {}
    for mode in fleet_res.get("modes", []) if fleet_res.get("steps") else []:
        label = "keep-alive" if mode == "keepalive" else "a connection per request"
        rows.append({"metric": f"fleet: simulated workers at pull p99 < {fleet.TARGET_P99_MS:.0f} ms, {label} "
                               f"({fleet_res['model']}, {fleet_res['server']} x{fleet_res['server_processes']})",
                     "leadops": float(fleet_res["largest_passing"][mode]), "ceiling": None, "peer": None,
                     "ratio": None, "target": f"≥ {fleet.TARGET_WORKERS:,}", "pass": fleet_res["pass"][mode],
                     "unit": "workers"})
    wake = res.get("wakeup") or {}
    if wake:
        rows.append({"metric": f"wake-up: enqueue -> claim p50 / p99 ms ({wake['workers']} idle long-polling "
                               f"workers, {wake['jobs']} jobs)",
                     "leadops": f"{wake['p50_ms']:.1f} / {wake['p99_ms']:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": f"p99 ≤ {wakeup.TARGET_P99_MS:.0f} ms", "pass": wake["pass"],
                     "unit": "ms"})
    for batch in (1, 10):
        p50 = get(api, f"batch{batch}", "pull_p50_ms")
        p99 = get(api, f"batch{batch}", "pull_p99_ms")
        rows.append({"metric": f"pull latency p50 / p99, batch {batch} (ms)",
                     "leadops": None if p50 is None else f"{p50:.1f} / {p99:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": "-", "pass": None, "unit": "ms"})
    ing = get(api, "ingest", "leads_per_s")
    ceil = get(raw, "ingest", "leads_per_s")
    # The median of the alternating pairs' ratios when the runs were paired (see measure_ingest).
    share = get(api, "ingest", "share_of_ceiling")
    if share is None:
        share = _ratio(ing, ceil)
    rows.append({"metric": "ingestion leads/s (reports of 500, 30% dup)", "leadops": ing, "ceiling": ceil, "peer": None,
                 "ratio": share, "target": f"≥ {TARGET_INGEST:,.0f}",
                 "pass": None if ing is None else ing >= TARGET_INGEST, "unit": "leads/s"})
    rows.append({"metric": "ingestion share of the raw ceiling", "leadops": share, "ceiling": None, "peer": None,
                 "ratio": None, "target": f"≥ {TARGET_INGEST_SHARE:.0%}",
                 "pass": None if share is None else share >= TARGET_INGEST_SHARE, "unit": "ratio"})
    for path, page in (res.get("monitor", {}).get("pages") or {}).items():
        rows.append({"metric": f"{path} p95 ms ({res['monitor']['leads_stored']:,} leads)", "leadops": page["p95_ms"],
                     "ceiling": None, "peer": None, "ratio": None,
                     "target": f"< {monitor_pages.TARGET_MS:.0f} ms", "pass": page["pass"], "unit": "ms"})
    live = res.get("live") or {}
    if live.get("p95_ms") is not None:
        rows.append({"metric": f"live: commit -> WebSocket p50 / p95 ms ({live['viewers']} viewers, "
                               f"{live['rate_per_s']:.0f} ev/s)",
                     "leadops": f"{live['p50_ms']:.1f} / {live['p95_ms']:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": f"p95 <= {live_latency.TARGET_P95_MS:.0f} ms", "pass": live["pass"],
                     "unit": "ms"})
    alerts = res.get("alerts") or {}
    if alerts.get("p99_s") is not None:
        rows.append({"metric": f"alerts: condition -> receipt p50 / p99 s ({alerts['alerts']} alerts, default timings)",
                     "leadops": f"{alerts['p50_s']:.1f} / {alerts['p99_s']:.1f}", "ceiling": None, "peer": None,
                     "ratio": None, "target": f"p99 <= {alert_latency.TARGET_P99_S:.0f} s", "pass": alerts["pass"],
                     "unit": "s"})
    if peer1 is not None:
        rows.append({"metric": "peer: Procrastinate, 1 process × 8", "leadops": None, "ceiling": None, "peer": peer1,
                     "ratio": None, "target": "-", "pass": None, "unit": "jobs/s"})
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    header = ["metric", "LeadOps", "ceiling", "peer", "ratio", "target", "pass/fail"]
    body = []
    for row in rows:
        leadops = row["leadops"]
        if row["unit"] == "ratio":
            leadops_text = "-" if leadops is None else f"{leadops:.0%}"
        elif isinstance(leadops, str):
            leadops_text = leadops
        elif row["unit"] == "ms":
            leadops_text = _num(leadops, 1)
        else:
            leadops_text = _num(leadops)
        ratio = row["ratio"]
        body.append([
            row["metric"], leadops_text, _num(row["ceiling"]), _num(row["peer"]),
            "-" if ratio is None else f"{ratio:.0%}", row["target"],
            "-" if row["pass"] is None else ("PASS" if row["pass"] else "FAIL"),
        ])
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(header)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in body:
        lines.append("| " + " | ".join(str(c).ljust(widths[i]) if i == 0 or i == 5 else str(c).rjust(widths[i])
                                       for i, c in enumerate(r)) + " |")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = common.module_parser("bench.run", __doc__ or "")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short run per metric")
    parser.add_argument("--fleet-sizes", default="", help="fleet steps, comma-separated (default: the plan's)")
    parser.add_argument("--fleet-seconds", type=float, default=None, help="measured seconds per fleet step")
    parser.add_argument("--fleet-model", choices=fleet.MODELS, default="longpoll",
                        help="longpoll: idle workers long-poll 30 s (issue 27); legacy: an empty pull every 5 s")
    parser.add_argument("--wakeup-workers", type=int, default=wakeup.WORKERS,
                        help="idle long-polling workers of the wake-up row (with a 1 s re-query, N pollers "
                             "find a new job within about 1/N s)")
    parser.add_argument("--fleet-modes", default=",".join(fleet.MODES),
                        help="keepalive, close or both (comma-separated): the connection modes of each fleet step")
    parser.add_argument("--only", default="", help=f"{', '.join(SECTIONS)} (comma-separated for several)")
    parser.add_argument("--client", choices=("auto", "reference", "mini"), default="auto",
                        help="auto: worker_client.LeadOpsClient when it imports, else bench.miniclient")
    parser.add_argument("--server", choices=KINDS, default=CHOSEN,
                        help=f"the server of the API rows (default {CHOSEN}, the one chosen by the servers section)")
    parser.add_argument("--processes", choices=("auto", "1", "2", "3", "4"), default="auto",
                        help="server processes of the API rows; auto tries 1 and 2 at batch 1 and keeps the faster")
    parser.add_argument("--no-redis", action="store_true", help="nonces and rate limits in PostgreSQL instead")
    parser.add_argument("--no-pool", action="store_true", help="LEADOPS_DB_POOL=False (persistent connections)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also run one py-spy window per API metric and write raw stacks to this folder")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/<date>.json)")
    parser.add_argument("--keep-db", action="store_true", help="leave the bench databases behind")
    args = parser.parse_args(argv)
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"--only takes {', '.join(SECTIONS)}; not {', '.join(sorted(unknown))}")
    args.sections = only or set(SECTIONS)
    args.fleet_modes = tuple(m.strip() for m in args.fleet_modes.split(",") if m.strip())
    if not args.fleet_modes or set(args.fleet_modes) - set(fleet.MODES):
        parser.error(f"--fleet-modes takes {', '.join(fleet.MODES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan.make(args.quick)
    if args.fleet_sizes:
        plan = dataclasses.replace(plan, fleet_sizes=tuple(int(x) for x in args.fleet_sizes.split(",") if x.strip()))
    if args.fleet_seconds:
        plan = dataclasses.replace(plan, fleet_seconds=args.fleet_seconds)
    started = time.time()
    # Thousands of simulated workers' sockets: the bench, its clients and the servers it starts.
    nofile = fleet_client.raise_nofile()
    res: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": plan.quick, "sections": sorted(args.sections), "machine": common.machine_info(),
        "setup": {"workers": WORKERS, "client_processes": CLIENT_PROCESSES, "threads_per_process": WORKERS // CLIENT_PROCESSES,
                  "leads_per_job": LEADS_PER_JOB, "leads_per_ingest_report": LEADS_PER_INGEST_REPORT,
                  "runs_per_metric": plan.runs, "api_seconds_per_run": plan.api_seconds,
                  "raw_seconds_per_run": plan.raw_seconds, "peer_jobs_per_run": plan.peer_jobs},
        "notes": [], "open_files_limit": nofile,
    }
    log(f"machine: {res['machine']['cpu_count']} CPUs, PostgreSQL {res['machine']['postgresql']}, "
        f"load {res['machine']['load_average_at_start']}, commit {res['machine']['git_commit'][:10]}")
    failures: list[str] = []

    def section(name: str, fn) -> None:
        try:
            fn()
        except Exception as exc:
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"{name} FAILED: {exc}")
            res["notes"].append(f"{name} failed: {type(exc).__name__}: {str(exc)[:2000]}")
            traceback.print_exc()

    if "raw" in args.sections or "ingest" in args.sections:
        res["raw"] = {}

    if "raw" in args.sections:
        def _raw_queue() -> None:
            raw_queue.setup()
            for batch in (1, 10):
                r = raw_queue.measure(batch=batch, seconds=plan.raw_seconds, runs=plan.runs, processes=4)
                res["raw"][f"queue_batch{batch}"] = r
                log(f"raw claim+complete batch {batch}: {r['jobs_per_s']:,.0f} jobs/s (runs {', '.join(f'{x:,.0f}' for x in r['runs'])})")
        section("raw queue ceiling", _raw_queue)

    if "raw" in args.sections or "ingest" in args.sections:
        def _raw_ingest() -> None:
            raw_ingest.setup()
            r: dict[str, Any] = {"parse_e164_per_s_one_core": raw_ingest.parse_rate(0.5 if plan.quick else 1.0)}
            if "ingest" not in args.sections:
                # With the API ingestion, its runs alternate with the ceiling's (measure_ingest).
                r.update(raw_ingest.measure(seconds=plan.raw_seconds, runs=plan.runs, processes=4))
                log(f"raw ingest ceiling: {r['leads_per_s']:,.0f} leads/s "
                    f"(runs {', '.join(f'{x:,.0f}' for x in r['runs'])})")
            res["raw"]["ingest"] = r
            log(f"parse+E.164 on one core {r['parse_e164_per_s_one_core']:,.0f}/s")
        section("raw ingestion ceiling", _raw_ingest)

    if "peer" in args.sections:
        def _peer() -> None:
            if not peer.available():
                raise RuntimeError("procrastinate is not installed: pip install -r requirements-bench.lock")
            peer.setup()
            two = peer.measure(jobs=plan.peer_jobs, processes=2, concurrency=8, runs=plan.peer_runs)
            log(f"peer Procrastinate {two['version']} 2×8: {two['jobs_per_s']:,.0f} jobs/s (runs {', '.join(f'{x:,.0f}' for x in two['runs'])})")
            one = peer.measure(jobs=plan.peer_jobs, processes=1, concurrency=8, runs=plan.peer_runs)
            log(f"peer Procrastinate 1×8: {one['jobs_per_s']:,.0f} jobs/s (runs {', '.join(f'{x:,.0f}' for x in one['runs'])})")
            res["peer"] = {"name": "procrastinate", "version": two["version"], "two_processes": two, "one_process": one}
        section("peer", _peer)

    if API_SECTIONS & args.sections:
        use_redis = not args.no_redis and portal.redis_reachable()
        if not args.no_redis and not use_redis:
            res["notes"].append("Redis not reachable: nonces and rate limits went to PostgreSQL")
        api = Api(redis=use_redis, pool=not args.no_pool, client=args.client, profile_dir=args.profile,
                  kind=args.server)
        res["api"] = {"client": api.client, "redis": use_redis, "db_pool": not args.no_pool, "server": args.server}
        log(f"API: server {args.server}, client {api.client}, redis {'on' if use_redis else 'off'}, "
            f"pool {'on' if not args.no_pool else 'off'}; logs in {api.log_dir}")
        try:
            section("portal setup", api.setup)
            if api.creds:
                if "servers" in args.sections:
                    def _servers() -> None:
                        r = server_choice.measure(api, runs=plan.runs, seconds=plan.server_seconds,
                                                  processes=os.cpu_count() or 1, leads_per_job=LEADS_PER_JOB, log=log,
                                                  requested=args.server,
                                                  loads=("exchange", "heartbeat") if plan.quick else tuple(server_choice.LOADS))
                        res["servers"] = r
                        log(f"servers: winner of this run by server CPU per job {r['winner_this_run']}; "
                            f"chosen {r['chosen']}")
                    section("server comparison", _servers)
                if "jobs" in args.sections:
                    section("API job path", lambda: measure_jobs(api, plan, args.processes, res["api"]))
                if "ingest" in args.sections:
                    res["api"]["ingest"] = {}
                    section("API ingestion", lambda: measure_ingest(api, plan, args.processes, res["api"]["ingest"],
                                                                    res.get("raw", {}).get("ingest")))
                if {"jobs", "ingest"} & args.sections:
                    section("queries per request",
                            lambda: res["api"].__setitem__("queries_per_request", measure_queries(api)))
                def serve_chosen() -> None:
                    if api.kind != args.server or not api.servers:
                        api.start(os.cpu_count() or 1, kind=args.server)
                    portal.top_up(api.env, 1)       # a job for clone_ready_jobs to copy

                if "heartbeat" in args.sections:
                    def _heartbeat() -> None:
                        serve_chosen()
                        res["heartbeat"] = measure_heartbeat(api, plan, res.get("servers"), args.server)
                    section("heartbeat CPU", _heartbeat)
                if "fleet" in args.sections:
                    def _fleet() -> None:
                        serve_chosen()
                        res["fleet"] = fleet.measure(api, api.env, sizes=plan.fleet_sizes, ramp_s=plan.fleet_ramp_s,
                                                     seconds=plan.fleet_seconds, log=log, model=args.fleet_model,
                                                     modes=args.fleet_modes)
                    section("fleet capacity", _fleet)
                if "wakeup" in args.sections:
                    def _wakeup() -> None:
                        if "fleet" in args.sections:
                            # The last fleet step may have overloaded the node on purpose: its backlog
                            # of abandoned requests is not what an idle worker waits behind.
                            api.stop()
                        serve_chosen()
                        res["wakeup"] = wakeup.measure(api, api.env, workers=args.wakeup_workers, log=log)
                    section("wake-up latency", _wakeup)
                if "pipeline" in args.sections:
                    def _pipeline() -> None:
                        # Fleet steps only when asked for by size (--fleet-sizes), each served both ways.
                        sizes = plan.fleet_sizes if args.fleet_sizes and "fleet" not in args.sections else ()
                        res["pipeline"] = measure_pipeline(api, plan, fleet_sizes=sizes)
                    section("pipelined transactions on/off", _pipeline)
                if "claim" in args.sections:
                    def _claim() -> None:
                        api.stop()
                        portal.top_up(api.env, 1)
                        res["claim"] = claim_cost.measure(api.env, [c["worker_id"] for c in api.creds],
                                                          seconds=plan.claim_seconds, runs=plan.runs,
                                                          sizes=plan.claim_sizes, log=log)
                    section("claim cost", _claim)
            for log_path in sorted(api.log_dir.glob("*.log")):
                if "Traceback" in log_path.read_text(errors="replace")[-200_000:]:
                    res["notes"].append(f"a server logged a traceback; see {log_path}")
        finally:
            api.stop()
        if api.profiles:
            res["api"]["profile_shares"] = api.profiles
        if "processes" in res["api"]:
            res["processes"] = res["api"]["processes"]

    if "monitor" in args.sections:
        def _monitor() -> None:
            leads = 100_000 if plan.quick else 1_000_000
            r = monitor_pages.measure(leads=leads, jobs=leads, requests=5 if plan.quick else 20,
                                      keep_db=args.keep_db)
            res["monitor"] = r
            log("monitor pages with " + f"{r['leads_stored']:,} leads: "
                + ", ".join(f"{path} p50 {p['median_ms']} ms / p95 {p['p95_ms']} ms" for path, p in r["pages"].items()))
        section("monitor pages", _monitor)

    if "live" in args.sections:
        def _live() -> None:
            r = live_latency.measure(seconds=5 if plan.quick else 20, keep_db=args.keep_db)
            res["live"] = r
            log(f"live monitor: {r['viewers']} viewers at {r['rate_per_s']:.0f} events/s: p50 {r['p50_ms']} ms, "
                f"p95 {r['p95_ms']} ms, {r['deliveries']:,} of {r['deliveries_expected']:,} deliveries")
        section("live latency", _live)

    if "alerts" in args.sections:
        def _alerts() -> None:
            r = alert_latency.measure(alerts=20 if plan.quick else 100, spread_s=5 if plan.quick else 30,
                                      keep_db=args.keep_db)
            res["alerts"] = r
            log(f"alerts: {r['delivered']} of {r['alerts']} delivered, condition -> receipt p50 {r['p50_s']} s, "
                f"p99 {r['p99_s']} s")
        section("alert delivery latency", _alerts)

    if not args.keep_db:
        for db in (raw_queue.DB, raw_ingest.DB, peer.DB, portal.DB, live_latency.DATABASE, alert_latency.DATABASE):
            with contextlib.suppress(Exception):
                common.drop_database(db)

    rows = build_rows(res)
    res["table"] = rows
    res["table_text"] = render_table(rows)
    res["elapsed_s"] = round(time.time() - started, 1)
    res["failures"] = failures
    out = args.out or RESULTS_DIR / f"{res['date']}.json"
    common.dump_json(out, res)

    print()
    print(res["table_text"])
    print("ratio = LeadOps / ceiling (same run); peer = Procrastinate draining no-op jobs, 2 processes × 8")
    api_res = res.get("api", {})
    if res.get("servers"):
        print("\nservers (same load, same processes, interleaved; medians of the runs):")
        print(server_choice.render(res["servers"]))
        print(f"winner of this run by server CPU per job: {res['servers']['winner_this_run']}")
    if "processes" in res:
        chosen = res["processes"]
        print(f"\n{chosen['server']} processes: {chosen['chosen']} ({chosen['how']}"
              + (f"; trial {chosen.get('trial_batch1_jobs_per_s')}" if "trial_batch1_jobs_per_s" in chosen else "") + ")")
    for key in ("batch1", "batch10", "exchange10", "ingest"):
        part = api_res.get(key)
        if part and "runs" in part:
            print(f"{key}: runs {', '.join(f'{x:,.0f}' for x in part['runs'])} (spread {part['spread']:.0%}); "
                  f"per job: {part['per_job']}; CPU share {part['cpu_share']}"
                  + (f"; ERRORS {part['errors']}" if part["errors"] else ""))
    shares = api_res.get("ingest", {}).get("share_of_ceiling_runs")
    if shares:
        ceiling_runs = res.get("raw", {}).get("ingest", {}).get("runs", [])
        print(f"ingest ceiling (alternating with the runs above): {', '.join(f'{x:,.0f}' for x in ceiling_runs)}; "
              f"share per pair: {', '.join(f'{x:.0%}' for x in shares)} (median {common.median(shares):.0%})")
    for note in res["notes"]:
        print(f"note: {note.splitlines()[0][:300]}")
    print(f"\nwritten to {out} in {res['elapsed_s']:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
