"""The ceiling of ingestion: phonenumbers parse + E.164 + HMAC fingerprint + INSERT ... ON CONFLICT
DO NOTHING in batches of 500, psycopg 3, no framework.

Each client process takes the same kind of leads the API bench sends (30% repeated numbers, mixed
formats), normalizes each phone exactly as docs/SYSTEM_OVERVIEW.md, "Semantics" says (`phonenumbers.parse(raw, "SA")`,
usable when at least possible), fingerprints it (HMAC-SHA256 of scope|E.164), drops in-batch
repeats and inserts the batch in one statement; the database's unique constraint decides what was
added. It stores only the fingerprint row: the portal also stores every lead and its counters,
which is why the target is a share of this ceiling, not parity.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import time
from typing import Any

import psycopg

from bench.common import Clients, client_ready, dsn, median, recreate_database, spread, wait_until
from bench.leads import LeadStream
from worker_client.tests.phones import portal_e164

DB = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + "_raw_ingest"
BATCH = 500

_DDL = """
CREATE TABLE bench_fingerprint (
    id bigserial PRIMARY KEY,
    fingerprint char(64) NOT NULL UNIQUE,
    scope varchar(10) NOT NULL,
    phone_e164 varchar(20) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

INSERT_SQL = """
INSERT INTO bench_fingerprint (fingerprint, scope, phone_e164)
SELECT * FROM unnest(%(fp)s::text[], %(scope)s::text[], %(e164)s::text[])
ON CONFLICT (fingerprint) DO NOTHING
RETURNING 1
"""

def setup() -> None:
    recreate_database(DB)
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute(_DDL)


def ingest_batch(conn: psycopg.Connection, key: bytes, scope: str, phones: list[str]) -> tuple[int, int, int]:
    invalid = 0
    batch: dict[str, str] = {}
    for raw in phones:
        e164 = portal_e164(raw)
        if e164 is None:
            invalid += 1
            continue
        fp = hmac.new(key, f"{scope}|{e164}".encode(), hashlib.sha256).hexdigest()
        batch.setdefault(fp, e164)
    fps = list(batch)
    with conn.transaction():
        added = len(conn.execute(INSERT_SQL, {"fp": fps, "scope": [scope] * len(fps),
                                              "e164": list(batch.values())}).fetchall())
    return added, len(phones) - invalid - added, invalid


def _client(*, index: int, run: int, key: bytes, max_batches: int, sync) -> dict[str, Any]:
    stream = LeadStream(run * 8 + index, stream_size=1_000_000)
    # The leads are made before the clock starts: making them is the worker's cost, not ingestion's.
    batches = [[lead["phone"] for lead in stream.leads(BATCH)] for _ in range(max_batches)]
    scope = dt.date.today().isoformat()
    leads = added = duplicates = invalid = 0
    ran_out = False
    with psycopg.connect(dsn(DB)) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        start_at, end_at = client_ready(sync)
        wait_until(start_at)
        for phones in batches:
            a, d, i = ingest_batch(conn, key, scope, phones)
            if time.time() > end_at:
                break
            leads += len(phones)
            added, duplicates, invalid = added + a, duplicates + d, invalid + i
        else:
            ran_out = True
    return {"leads": leads, "added": added, "duplicates": duplicates, "invalid": invalid,
            "ran_out": ran_out}


def measure(*, seconds: float, runs: int, processes: int = 4, expected_rate: float = 60_000,
            first_run: int = 0) -> dict[str, Any]:
    """Run the ceiling `runs` times; `first_run` numbers the runs so later calls get fresh leads."""
    key = secrets.token_bytes(32)
    samples = []
    for run in range(first_run, first_run + runs):
        max_batches = int(expected_rate * seconds * 1.5 / processes / BATCH) + 4
        with Clients(processes) as clients:
            for i in range(processes):
                clients.submit(_client, index=i, run=run, key=key, max_batches=max_batches)
            clients.start(warmup_s=0.2, seconds=seconds)
            results = clients.results(timeout=seconds + 60)
        leads = sum(r["leads"] for r in results)
        sample = {
            "leads": leads, "seconds": seconds, "leads_per_s": leads / seconds,
            "added": sum(r["added"] for r in results), "duplicates": sum(r["duplicates"] for r in results),
            "invalid": sum(r["invalid"] for r in results), "ran_out": any(r["ran_out"] for r in results),
        }
        samples.append(sample)
        expected_rate = max(expected_rate, sample["leads_per_s"] * 1.3)
    rates = [s["leads_per_s"] for s in samples]
    return {"processes": processes, "batch": BATCH, "leads_per_s": median(rates), "runs": rates,
            "spread": spread(rates), "samples": samples}


def parse_rate(seconds: float = 1.0) -> float:
    """phonenumbers parse + E.164 on one core (the docs/PERFORMANCE.md reference figure)."""
    phones = [lead["phone"] for lead in LeadStream(690).leads(5_000)]
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for raw in phones:
            portal_e164(raw)
        done += len(phones)
    return done / (time.perf_counter() - start)


if __name__ == "__main__":
    setup()
    print("parse/s one core", parse_rate())
    print(measure(seconds=3, runs=1))
