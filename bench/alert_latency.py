"""Alert delivery latency: from the moment a condition holds to the receipt of its notification.

100 workers stop heartbeating at moments spread over 30 s (each becomes overdue 60 s after its last
heartbeat, the default threshold). One `alerts_evaluate` process with the default timings (evaluation
every 10 s, group wait 15 s) watches them on PostgreSQL; a route groups by `alertname` and `worker`, so
every alert is its own group and its own notification to a local HTTP webhook receiver (the signed
Alertmanager JSON). Latency is the receipt time minus the moment that worker's heartbeat became
overdue, over every alert. Target: p99 <= 30 s (one evaluation period plus the group wait plus the
send: within the first group wait after detection).

Run alone with `python -m bench.alert_latency [--alerts 100] [--spread 30]`;
`bench.run --only alerts` calls `measure()`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench import common, portal
from bench.common import ROOT, drop_database, median, name_value_table, percentile

DATABASE = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + "_alerts"
TARGET_P99_S = 30.0
OVERDUE_AFTER_S = 60

SETUP_CHILD = r"""
import datetime as dt, json, sys
import django
django.setup()
from django.utils import timezone
from alerts.models import Route
from alerts.services import receiver_set, rule_set
from workers_mgmt.models import Worker
url, count, first_in, spread = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rule_set(kind="heartbeat_missing", threshold=60, for_seconds=0)
hook = receiver_set(name="bench-hook", kind="webhook", url=url, secret="bench-secret")
Route.objects.create(name="one group per worker", receiver=hook, group_by=["alertname", "worker"])
now = timezone.now()
overdue = {}
workers = []
for n in range(count):
    at = now + dt.timedelta(seconds=first_in + spread * n / max(1, count - 1))
    workers.append(Worker(id=f"bench-{n:03d}", last_heartbeat_at=at - dt.timedelta(seconds=60)))
    overdue[f"bench-{n:03d}"] = at.timestamp()
Worker.objects.bulk_create(workers)
print(json.dumps(overdue))
"""


class Receiver:
    """A local webhook receiver that notes when each worker's alert first arrives."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.posts = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                with outer.lock:
                    outer.posts += 1
                    for alert in json.loads(body).get("alerts", []):
                        worker = alert["labels"].get("worker")
                        if worker and alert["status"] == "firing":
                            outer.first_seen.setdefault(worker, arrived)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure(*, alerts: int = 100, spread_s: float = 30.0, keep_db: bool = False) -> dict:
    """Run the evaluator with default timings on a fresh database; time condition -> receipt per alert."""
    env, log_dir = portal.fresh_portal(DATABASE, redis=False)
    receiver = Receiver()
    first_in = 12.0  # seconds: the evaluator is up and idle before the first heartbeat becomes overdue
    evaluator = None
    try:
        out = subprocess.run([sys.executable, "-c", SETUP_CHILD, receiver.url, str(alerts), str(first_in),
                              str(spread_s)], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        overdue_at: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        log_path = log_dir / "alerts_evaluate.log"
        with open(log_path, "wb") as log:
            evaluator = subprocess.Popen([sys.executable, "manage.py", "alerts_evaluate"], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = max(overdue_at.values()) + 90
        while time.time() < deadline and len(receiver.first_seen) < alerts:
            time.sleep(0.5)
    finally:
        if evaluator is not None:
            evaluator.terminate()
            evaluator.wait(timeout=30)
        receiver.close()
        if not keep_db:
            drop_database(DATABASE)
    latencies = [receiver.first_seen[w] - at for w, at in overdue_at.items() if w in receiver.first_seen]
    p99 = percentile(latencies, 99) if latencies else float("nan")
    return {
        "alerts": alerts, "spread_s": spread_s, "delivered": len(latencies), "posts": receiver.posts,
        "p50_s": round(median(latencies), 2) if latencies else None,
        "p99_s": round(p99, 2) if latencies else None,
        "max_s": round(max(latencies), 2) if latencies else None,
        "timings": {"eval_interval_s": 10, "group_wait_s": 15, "group_interval_s": 120},
        "target_p99_s": TARGET_P99_S,
        "pass": len(latencies) == alerts and receiver.posts == alerts and p99 <= TARGET_P99_S,
        "evaluator_log": str(log_path),
    }


def render(result: dict) -> str:
    rows = [("alerts", f"{result['alerts']} (conditions spread over {result['spread_s']:.0f} s)"),
            ("delivered", f"{result['delivered']} in {result['posts']} POSTs"),
            *common.latency_rows(result, unit="s", quantiles=("p50", "p99"), target=f"p99 <= {TARGET_P99_S:.0f} s")]
    return name_value_table(rows)


def main() -> int:
    parser = common.module_parser("bench.alert_latency", __doc__ or "")
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--spread", type=float, default=30.0)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    result = measure(alerts=args.alerts, spread_s=args.spread, keep_db=args.keep_db)
    print(render(result))
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
