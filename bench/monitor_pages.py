"""Monitor pages with 1,000,000 leads in PostgreSQL: how long the admin takes to answer.

`admin/monitor/` and `admin/monitor/workers/` must answer with p95 under 150 ms with a million leads
and a million jobs stored (the job counts are maintained, docs/PERFORMANCE.md; the first target was
300 ms). They read the hourly counters and the job states, never the lead table; this
measures that claim on a database that really holds the leads, and also 1,000,000 jobs (30 days of
finished jobs, as the pruner keeps them, each with its attempt): the pages do count every job.

Run alone with `python -m bench.monitor_pages [--leads N]`; `bench.run` calls `measure()`.
It runs Django in a child process (its own settings, on its own database), so the bench's own
process never imports the portal.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import time

import psycopg

from bench.common import ROOT, database_url, drop_database, dsn, median, percentile, recreate_database

DATABASE = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + "_monitor"
TARGET_MS = 150.0

FILL_SQL = """
INSERT INTO ingestion_lead (name, phone_raw, city, category, address, website, source_url, external_id,
    extra, phone_e164, phone_valid, phone_type, phone_region, name_normalized, city_normalized,
    provider, worker_id, local_day, created_at)
SELECT 'Shop ' || g, '05' || lpad((g %% 100000000)::text, 8, '0'), 'Riyadh', 'cafe', '', '', '', '',
    '{}'::jsonb, '+9665' || lpad((g %% 100000000)::text, 8, '0'), true, 'mobile', 'SA', 'shop ' || g,
    'riyadh', 'prov-' || (g %% 3), 'w-' || (g %% 16),
    (now() - ((g %% 7) || ' days')::interval)::date, now() - ((g %% 7) || ' days')::interval
FROM generate_series(1, %(leads)s) AS g
"""

COUNTERS_SQL = """
INSERT INTO ingestion_ingestcounter (hour, local_day, provider, worker_id, added, duplicates,
    duplicates_in_batch, duplicates_existing, invalid, suppressed, updated_at)
SELECT date_trunc('hour', now()) - (h || ' hours')::interval,
       (date_trunc('hour', now()) - (h || ' hours')::interval)::date,
       'prov-' || p, 'w-' || w, 40, 15, 5, 10, 1, 0, now()
FROM generate_series(0, 7 * 24 - 1) AS h, generate_series(0, 2) AS p, generate_series(0, 15) AS w
"""

JOBS_SQL = """
INSERT INTO queueing_provider (name, enabled, max_attempts, backoff_base_s, backoff_cap_s, lease_seconds,
    quota_burst, breaker_failure_pct, breaker_min_outcomes, breaker_window_s, breaker_cooldown_s,
    breaker_probes, created_at, updated_at)
SELECT 'prov-' || p, true, 5, 30, 3600, 120, 1, 50, 20, 300, 120, 3, now(), now()
FROM generate_series(0, 2) AS p;
INSERT INTO workers_mgmt_worker (id, name, enabled, channel, rate_limit_per_min, reported_version,
    reported_status, running_jobs, last_metrics, notes, last_heartbeat_at, created_at, updated_at)
SELECT 'w-' || w, 'w-' || w, true, 'stable', 600, '1.0.0', 'ok', 0, '{}'::jsonb, '',
    now() - (w * 10 || ' seconds')::interval, now(), now()
FROM generate_series(0, 15) AS w;
INSERT INTO queueing_job (provider_id, payload, priority, state, run_at, attempts, max_attempts,
    dead_reason, leads_added, created_at, updated_at, finished_at)
SELECT (SELECT id FROM queueing_provider ORDER BY id LIMIT 1 OFFSET (g %% 3)), '{}'::jsonb, 0,
    (ARRAY['queued','succeeded','succeeded','dead'])[1 + g %% 4], now(), 1, 5, '', 5, now(), now(),
    CASE WHEN g %% 4 IN (1, 2, 3) THEN now() - ((g %% 43200) || ' minutes')::interval END
FROM generate_series(1, %(jobs)s) AS g;
INSERT INTO queueing_jobattempt (id, job_id, number, state, claimed_at, lease_expires_at, finished_at,
    reports, leads_added, leads_duplicates, leads_invalid, worker_id, log_tail)
SELECT gen_random_uuid(), j.id, 1, CASE WHEN j.id %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
    j.finished_at - interval '1 minute', j.finished_at, j.finished_at, 1, 5, 2, 0, 'w-' || (j.id %% 16), ''
FROM queueing_job j WHERE j.finished_at IS NOT NULL
"""

CHILD = r"""
import json, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
user, _ = get_user_model().objects.get_or_create(username="bench-staff", defaults={"is_staff": True,
                                                                                  "is_superuser": True})
client = Client()
client.force_login(user)
out = {}
for path in ("/admin/monitor/", "/admin/monitor/workers/"):
    assert client.get(path).status_code == 200  # warm-up: templates, connection
    times = []
    for _ in range(int(sys.argv[1])):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    out[path] = times
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(DATABASE), "DEBUG": "False", "SECURE_SSL_REDIRECT": "False",
        "ALLOWED_HOSTS": "testserver,127.0.0.1", "DJANGO_SETTINGS_MODULE": "leadops.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LEADOPS_SECRETS_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LEADOPS_FINGERPRINT_KEY": secrets.token_urlsafe(32),
        "LEADOPS_SIGNING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LEADOPS_DB_POOL": "False", "REDIS_URL": "",
    }


def measure(*, leads: int = 1_000_000, jobs: int = 1_000_000, requests: int = 20, keep_db: bool = False) -> dict:
    """Fill a fresh database with `leads` leads and time both monitor pages."""
    recreate_database(DATABASE)
    env = _env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True)
    started = time.monotonic()
    with psycopg.connect(dsn(DATABASE), autocommit=True) as conn:
        conn.execute(FILL_SQL, {"leads": leads})
        conn.execute(COUNTERS_SQL)
        for statement in JOBS_SQL.split(";"):
            if statement.strip():
                conn.execute(statement, {"jobs": jobs})
        conn.execute("VACUUM ANALYZE")
        stored = conn.execute("SELECT count(*) FROM ingestion_lead").fetchone()[0]
    fill_s = time.monotonic() - started
    child = subprocess.run([sys.executable, "-c", CHILD, str(requests)], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True)
    timings = json.loads(child.stdout.strip().splitlines()[-1])
    if not keep_db:
        drop_database(DATABASE)
    pages = {
        path: {"median_ms": round(median(times), 1), "p95_ms": round(percentile(times, 95), 1),
               "max_ms": round(max(times), 1), "requests": len(times),
               "pass": percentile(times, 95) < TARGET_MS}
        for path, times in timings.items()
    }
    return {"leads_stored": stored, "jobs": jobs, "fill_seconds": round(fill_s, 1), "target_ms": TARGET_MS,
            "pages": pages}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_pages", description=__doc__)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    result = measure(leads=args.leads, requests=args.requests, keep_db=args.keep_db)
    print(f"{'page':<28}{'median ms':>11}{'p95 ms':>9}{'target':>9}  result   ({result['leads_stored']:,} leads)")
    for path, page in result["pages"].items():
        print(f"{path:<28}{page['median_ms']:>11}{page['p95_ms']:>9}{TARGET_MS:>9.0f}  "
              f"{'PASS' if page['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
