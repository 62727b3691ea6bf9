"""What parsing the hot request bodies costs, before and after the protocol modules (docs/PERFORMANCE.md,
"Parsing the worker bodies").

    .venv/bin/python -m bench.parse_cpu --before DIR      # DIR: a checkout from before the protocol modules

Two measurements, both as server CPU (`time.process_time`), medians over interleaved rounds, each
checkout in a process of its own on an SQLite database of its own:

1. Parsing alone: the heartbeat, pull, v1 report (5 leads) and exchange (10 reports of 5 leads and a
   pull) bodies, turned into what the service is called with, 2,000 times a round. A checkout without
   the protocol modules parses with its DRF serializers (the same steps its views took).
2. Whole signed requests through Django's test client (`bench/request_cpu.py`).

Prints a table and writes bench/results/parse-cpu-<date>.json.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("heartbeat", "pull", "report 5 leads", "exchange 10x5 + pull")


def _bodies() -> dict[str, Any]:
    def leads(n: int) -> list[dict[str, str]]:
        return [{"name": f"Shop {i}", "phone": f"05500{i:05d}", "city": "Riyadh"} for i in range(n)]

    report = {"attempt_id": str(uuid.uuid4()), "outcome": "succeeded", "leads": leads(5)}
    return {
        "heartbeat": {"version": "1.4.2", "status": "ok", "running_jobs": 3, "metrics": {"rss_mb": 212}},
        "pull": {"max": 10, "providers": ["maps"]},
        "report 5 leads": report,
        "exchange 10x5 + pull": {"reports": [{"job_id": i + 1, "idempotency_key": str(uuid.uuid4()), **report}
                                             for i in range(10)], "pull": {"max": 10, "providers": ["maps"]}},
    }


def _parsers() -> dict[str, Callable[[Any], Any]]:
    """What each checkout's views do with a decoded body before calling the service."""
    if importlib.util.find_spec("queueing.protocol") is not None:
        from queueing import protocol
        from workers_mgmt.protocol import heartbeat_parse

        return {
            "heartbeat": heartbeat_parse,
            "pull": protocol.pull_parse,
            "report 5 leads": lambda body: protocol.report_parse(job_id=1, key="k-1", raw=body),
            "exchange 10x5 + pull": protocol.exchange_parse,
        }
    from queueing import api as queue_api
    from workers_mgmt import api as fleet_api

    def serialized(serializer_class: Any) -> Callable[[Any], Any]:
        def parse(body: Any) -> Any:
            serializer = serializer_class(data=body)
            serializer.is_valid(raise_exception=True)
            return serializer.validated_data
        return parse

    def exchange(body: Any) -> Any:
        reports = body.get("reports", [])
        queue_api._exchange_limits_check(reports)
        pull = serialized(queue_api.ExchangePullIn)(body["pull"])
        return [queue_api._exchange_item(item) for item in reports], pull

    return {
        "heartbeat": serialized(fleet_api.HeartbeatIn),
        "pull": serialized(queue_api.PullIn),
        "report 5 leads": lambda body: queue_api._report_call(job_id=1, key="k-1", raw=body),
        "exchange 10x5 + pull": exchange,
    }


def parse_child(rounds: int, calls: int) -> None:
    import django

    django.setup()
    bodies, parsers = _bodies(), _parsers()
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_index in range(rounds + 1):
        for kind in KINDS:
            body, parse = bodies[kind], parsers[kind]
            start = time.process_time()
            for _ in range(calls):
                parse(body)
            if round_index:  # the first round warms up
                samples[kind].append((time.process_time() - start) / calls * 1e6)
    json.dump({kind: statistics.median(values) for kind, values in samples.items()}, sys.stdout)


def main() -> None:
    if sys.argv[1:2] == ["--parse-child"]:  # the copy run inside a checkout: `--parse-child ROUNDS CALLS`
        parse_child(int(sys.argv[2]), int(sys.argv[3]))
        return
    # Imported here, not above: the child runs from a copy of this file inside either checkout, whose
    # bench package may be older than this one.
    from bench import common
    from bench.credential_check import _env, _migrate, requests_cpu

    parser = common.before_after_parser(__doc__ or "", before="a checkout from before the protocol modules (required)",
                                        reps=100, reps_help="whole requests of each kind per round",
                                        calls_help="parses of each body per micro round")
    args = parser.parse_args()
    if args.before is None:
        parser.error("--before is required")

    trees = {"before": args.before.resolve(), "now": common.ROOT}
    log_dir = Path(tempfile.mkdtemp(prefix="parse-cpu-"))
    # Copies outside the bench folder, so nothing there shadows a module of either checkout.
    script = log_dir / "parse_cpu.py"
    shutil.copyfile(common.ROOT / "bench" / "parse_cpu.py", script)
    request_script = log_dir / "request_cpu.py"
    shutil.copyfile(common.ROOT / "bench" / "request_cpu.py", request_script)
    envs = {}
    for name, tree in trees.items():
        envs[name] = _env("sqlite", log_dir, f"parse_{name}", log_dir)
        _migrate(tree, envs[name], "sqlite", f"parse_{name}")
    parsing: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    requests: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for round_index in range(args.rounds):
        order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
        for name in order:
            parsing[name].append(common.child_json([str(script), "--parse-child", "1", str(args.calls)],
                                                   tree=trees[name], env=envs[name], what="parse_cpu"))
            requests[name].append(requests_cpu(trees[name], envs[name], args.reps, request_script))
        print(f"round {round_index + 1}: " + "; ".join(
            f"{name} parse {json.dumps({k: round(v, 1) for k, v in parsing[name][-1].items()})} "
            f"requests {json.dumps({k: round(v, 2) for k, v in requests[name][-1].items()})}" for name in order),
            flush=True)
    results = {
        kind_of: {name: {kind: common.median([run[kind] for run in runs[name]]) for kind in runs[name][0]}
                  for name in trees}
        for kind_of, runs in (("parse_us", parsing), ("request_ms", requests))
    }
    for kind_of, runs in (("parse_us", parsing), ("request_ms", requests)):
        results[kind_of]["paired_delta"] = {
            kind: common.median([now[kind] - before[kind] for now, before in zip(runs["now"], runs["before"],
                                                                               strict=True)])
            for kind in runs["now"][0]}
    print("\nserver CPU, medians            before      now   paired change")
    for kind_of, unit in (("parse_us", "us"), ("request_ms", "ms")):
        for kind, before in results[kind_of]["before"].items():
            print(f"{kind_of[:-3]:8} {kind:42} {before:8.3f} {results[kind_of]['now'][kind]:8.3f} "
                  f"{results[kind_of]['paired_delta'][kind]:+8.3f} {unit}")
    out = common.ROOT / "bench" / "results" / f"parse-cpu-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps({"rounds": args.rounds, "calls": args.calls, "reps": args.reps, **results}, indent=2))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
