"""Retention purge under load: delete 1,000,000 expired leads while workers keep pulling.

`purge_retention` deletes leads in batches of short transactions so that the workers' pulls and
reports never wait long behind it (docs/PRIVACY.md, "Retention"). This bench fills a fresh
PostgreSQL database with N expired leads, starts W worker threads that pull a job and give it back
at once (the claim path of `POST /jobs/pull` and `POST /jobs/release`, through the services, no HTTP),
runs the leads purge in a process of its own (as the q cluster does), and prints the longest pull latency seen while it ran. Target: < 200 ms.

Run with `python -m bench.purge_under_load [--leads 1000000] [--workers 4] [--database NAME]`
(PostgreSQL on 127.0.0.1 only; the database is dropped and created again).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

from bench.common import (
    ROOT,
    database_url,
    drop_database,
    dump_json,
    machine_info,
    percentile,
    recreate_database,
)

TARGET_MS = 200.0

# The purge as the q cluster runs it: a process of its own (prints [deleted, seconds]).
PURGE_CHILD = """
import datetime as dt, json, time
import django
django.setup()
from django.utils import timezone
from ingestion.services import leads_purge
t0 = time.monotonic()
deleted = leads_purge(older_than=timezone.localdate() - dt.timedelta(days=365), batch_size={batch})
print(json.dumps([deleted, time.monotonic() - t0]))
"""

FILL_SQL = """
INSERT INTO ingestion_lead (name, phone_raw, city, category, address, website, source_url, external_id,
    extra, phone_e164, phone_valid, phone_type, phone_region, name_normalized, city_normalized,
    provider, worker_id, local_day, created_at)
SELECT 'Shop ' || g, '05' || lpad(g::text, 8, '0'), 'Riyadh', 'cafe', 'Street ' || g, '', 'https://example.com/' || g,
       '', '{}', '+9665' || lpad(g::text, 8, '0'), true, 'mobile', 'SA', 'shop ' || g, 'riyadh',
       'bench', 'bench-w', current_date - 400, now() - interval '400 days'
FROM generate_series(%s, %s) AS g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", default="leadops_bench_purge")
    parser.add_argument("--batch", type=int, default=1000, help="leads per purge transaction")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--same-process", action="store_true",
                        help="purge in the pullers' process (the earlier, GIL-bound measurement)")
    args = parser.parse_args()

    recreate_database(args.database)
    os.environ.update({"DATABASE_URL": database_url(args.database), "DEBUG": "true", "REDIS_URL": "",
                       "DJANGO_SETTINGS_MODULE": "leadops.settings"})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections
    from django.utils import timezone

    from ingestion.services import leads_purge
    from queueing.services import jobs_enqueue, jobs_pull, jobs_release, provider_get_or_create
    from workers_mgmt.models import Worker
    from workers_mgmt.services import worker_create

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    with connection.cursor() as cursor:
        step = 200_000
        for first in range(1, args.leads + 1, step):
            cursor.execute(FILL_SQL, [first, min(args.leads, first + step - 1)])
        cursor.execute("VACUUM ANALYZE ingestion_lead")
    print(f"filled {args.leads} expired leads in {time.monotonic() - started:.1f} s", file=sys.stderr)
    provider = provider_get_or_create(name="bench")
    jobs_enqueue(provider=provider, payloads=[{"query": "q"}] * (args.workers * 20))
    workers = [worker_create(worker_id=f"bench-w{n}")[0] for n in range(args.workers)]

    stop = threading.Event()
    purging = threading.Event()
    samples: list[tuple[float, bool]] = []  # (pull latency ms, during the purge)
    lock = threading.Lock()

    def pull_loop(worker: Worker) -> None:
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                result = jobs_pull(worker=worker, max_jobs=1)
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    samples.append((elapsed, purging.is_set()))
                if result.claims:
                    jobs_release(worker=worker)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pull_loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    time.sleep(3)  # a baseline before the purge
    purging.set()
    t0 = time.monotonic()
    if args.same_process:
        deleted = leads_purge(older_than=timezone.localdate() - dt.timedelta(days=365), batch_size=args.batch)
        purge_s = time.monotonic() - t0
    else:
        # In production the purge runs in the q cluster's process and pulls in the app servers': a
        # purge in this process would also make the pullers wait for the GIL, which is not the
        # database contention this bench is about.
        child = subprocess.run([sys.executable, "-c", PURGE_CHILD.format(batch=args.batch)], cwd=ROOT,
                               env=os.environ, capture_output=True, text=True, check=True)
        deleted, purge_s = json.loads(child.stdout.strip().splitlines()[-1])
    purging.clear()
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()

    during = [ms for ms, flag in samples if flag]
    before = [ms for ms, flag in samples if not flag]
    result = {
        "leads_deleted": deleted, "purge_seconds": round(purge_s, 1),
        "leads_per_second": round(deleted / purge_s) if purge_s else None, "workers": args.workers,
        "batch": args.batch, "purge_process": "same" if args.same_process else "own",
        "load_average": os.getloadavg()[0],
        "pulls_during_purge": len(during),
        "pull_ms_during": {"max": round(max(during), 1) if during else None,
                           "p99": round(percentile(during, 99), 1) if during else None,
                           "p50": round(percentile(during, 50), 1) if during else None},
        "pull_ms_outside": {"max": round(max(before), 1) if before else None,
                            "p99": round(percentile(before, 99), 1) if before else None},
        "target_max_ms": TARGET_MS,
        "met": bool(during) and max(during) < TARGET_MS,
    }
    print(json.dumps(result, indent=2))
    dump_json(ROOT / "bench" / "results" / f"purge-{dt.date.today()}.json", {"machine": machine_info(), "result": result})
    connections.close_all()
    if not args.keep:
        drop_database(args.database)


if __name__ == "__main__":
    main()
