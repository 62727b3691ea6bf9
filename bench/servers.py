"""Which server: the worker API under daphne, uvicorn, gunicorn (sync and gthread) and granian.

Each server serves the same portal (same database, settings and workers) with the same number of
processes (one per core), under the same three loads of the 16 bench workers:

- `batch1`: the v1 job path at batch 1 (pull 1, report it with 5 leads);
- `exchange`: protocol v1.1, 10 reports + pull 10 per round trip (5 leads per job);
- `heartbeat`: signed heartbeats back to back.

The servers take turns: run 1 serves every kind once, then run 2 (in another order), then run 3, so
a slow minute of the shared host falls on several servers instead of on one. Server CPU is read
from /proc for the server's whole process tree (master and workers) before and after each window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import common
from leadops.servers import CHOSEN

# The WSGI side of granian is the one a Django app runs on without an event loop in front (its ASGI
# side ran the same sync views through asgiref, like uvicorn).
KINDS = ("daphne", "uvicorn", "gunicorn-sync", "gunicorn-gthread", "granian-wsgi")
LOADS = {
    "batch1": {"batch": 1, "mode": "v1", "expected": 150.0},
    "exchange": {"batch": 10, "mode": "exchange", "expected": 500.0},
    "heartbeat": {"batch": 1, "mode": "heartbeat", "expected": 0.0},
}


def measure(api: Any, *, runs: int, seconds: float, processes: int, leads_per_job: int,
            log: Callable[[str], None], requested: str | None = None,
            loads: tuple[str, ...] = tuple(LOADS)) -> dict[str, Any]:
    """`loads`: a subset of LOADS (`--quick` leaves out batch 1, the slowest window)."""
    windows: dict[str, dict[str, list[dict[str, Any]]]] = {k: {load: [] for load in LOADS} for k in KINDS}
    expected = {load: spec["expected"] for load, spec in LOADS.items()}
    try:
        _run_all(api, windows, expected, runs=runs, seconds=seconds, processes=processes,
                 leads_per_job=leads_per_job, log=log, loads=loads)
    finally:
        # The API rows that follow run the server the bench was asked for, not the last one tried.
        api.stop()
        api.kind = CHOSEN if requested is None else requested
    return _summary(windows, runs=runs, seconds=seconds, processes=processes)


def _run_all(api: Any, windows: dict[str, dict[str, list[dict[str, Any]]]], expected: dict[str, float], *,
             runs: int, seconds: float, processes: int, leads_per_job: int, log: Callable[[str], None],
             loads: tuple[str, ...]) -> None:
    for run in range(runs):
        order = KINDS[run % len(KINDS):] + KINDS[:run % len(KINDS)]
        for kind in order:
            api.start(processes, kind=kind)
            for load in loads:
                spec = LOADS[load]
                w = api.window(batch=spec["batch"], seconds=seconds, leads_per_job=leads_per_job,
                               expected_jobs_per_s=expected[load], mode=spec["mode"])
                if w["queue_ran_dry"]:
                    expected[load] = w["jobs_per_s"] * 3 + 500
                    w = api.window(batch=spec["batch"], seconds=seconds, leads_per_job=leads_per_job,
                                   expected_jobs_per_s=expected[load], mode=spec["mode"])
                if spec["mode"] != "heartbeat":
                    expected[load] = max(expected[load], w["jobs_per_s"] * 1.3)
                windows[kind][load].append(w)
                per = w["cpu_s"]["server"] * 1000 / max(1, w["jobs"])
                log(f"servers run {run + 1}: {kind:16} {load:9} {w['jobs_per_s']:7.0f}/s, "
                    f"server CPU {per:5.2f} ms each" + (f", errors {w['errors']}" if w["errors"] else ""))
            api.stop()


def _summary(windows: dict[str, dict[str, list[dict[str, Any]]]], *, runs: int, seconds: float,
             processes: int) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        row: dict[str, Any] = {}
        for load in LOADS:
            ws = windows[kind][load]
            rates = [w["jobs_per_s"] for w in ws] or [float("nan")]
            per_item = [w["cpu_s"]["server"] * 1000 / w["jobs"] for w in ws if w["jobs"]]
            pg_item = [w["cpu_s"]["postgres"] * 1000 / w["jobs"] for w in ws if w["jobs"]]
            errors: dict[str, int] = {}
            for w in ws:
                for key, value in w["errors"].items():
                    errors[key] = errors.get(key, 0) + value
            row[load] = {
                "per_s": common.median(rates), "runs": rates, "spread": common.spread(rates),
                "server_cpu_ms": common.median(per_item) if per_item else None, "server_cpu_ms_runs": per_item,
                "postgres_cpu_ms": common.median(pg_item) if pg_item else None,
                "p50_ms": common.percentile([x for w in ws for x in w["pull_ms"]], 50),
                "p99_ms": common.percentile([x for w in ws for x in w["pull_ms"]], 99),
                "errors": errors,
            }
        table[kind] = row
    clean = [k for k in KINDS if not any(table[k][load]["errors"] for load in LOADS)]
    # The winner of this run: the least server CPU per job on the exchange (the fleet's path), then v1.
    winner = min(clean, key=lambda k: (table[k]["exchange"]["server_cpu_ms"] or float("inf"),
                                       table[k]["batch1"]["server_cpu_ms"] or float("inf"))) if clean else None
    return {"kinds": list(KINDS), "processes": processes, "runs": runs, "seconds": seconds, "table": table,
            "winner_this_run": winner, "chosen": CHOSEN, "order": "interleaved: every kind once per run"}


def render(result: dict[str, Any]) -> str:
    header = ["server", "batch 1 jobs/s", "CPU ms/job", "exchange jobs/s", "CPU ms/job", "heartbeats/s",
              "CPU ms/heartbeat", "errors"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for kind in result["kinds"]:
        row = result["table"][kind]
        errors = sum(sum(row[load]["errors"].values()) for load in LOADS)

        def cpu(load: str, row: dict[str, Any] = row) -> str:
            value = row[load]["server_cpu_ms"]
            return "-" if value is None else f"{value:.2f}"

        lines.append(f"| {kind}{' (chosen)' if kind == result['chosen'] else ''} | {row['batch1']['per_s']:.0f} | "
                     f"{cpu('batch1')} | {row['exchange']['per_s']:.0f} | {cpu('exchange')} | "
                     f"{row['heartbeat']['per_s']:.0f} | {cpu('heartbeat')} | {errors} |")
    return "\n".join(lines)
