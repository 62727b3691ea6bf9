"""The SQL of one ingest call: the fingerprints, the leads and the hourly counters of many reports.

`ingestion.services.lead_batches_ingest` decides what to store; this module stores it, in a number
of statements that does not depend on how many leads or how many reports one call carries:
PostgreSQL one statement for fingerprints and leads, SQLite three; then one counter upsert.

Every lead travels in one JSON parameter (`rows`) and names its report by index (`b`); the
reports' own columns (provider, worker, job, attempt) travel in a second, small one (`batches`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone

from core.text import json_bytes
from ingestion.models import IngestCounter, Lead, LeadFingerprint

LEAD_TABLE = Lead._meta.db_table
FINGERPRINT_TABLE = LeadFingerprint._meta.db_table
COUNTER_TABLE = IngestCounter._meta.db_table

# The per-row columns of a lead, with their PostgreSQL types; each lead travels as a JSON object
# with these keys, plus `fp` (its fingerprint or null) and `b` (the index of its report).
ROW_COLUMNS: dict[str, str] = {
    "name": "text", "phone_raw": "text", "city": "text", "city_raw": "text", "category": "text",
    "address": "text", "website": "text", "source_url": "text", "external_id": "text", "lat": "float8",
    "lng": "float8",
    "rating": "float8", "extra": "jsonb", "phone_e164": "text", "phone_valid": "boolean",
    "phone_type": "text", "phone_region": "text", "name_normalized": "text", "city_normalized": "text",
}
# The columns of one report (the same for all its leads), with their PostgreSQL types.
BATCH_COLUMNS: dict[str, str] = {"provider": "text", "worker_id": "text", "job_id": "bigint",
                                 "attempt_id": "uuid"}
_ROW_NAMES = ", ".join(ROW_COLUMNS)
_BATCH_NAMES = ", ".join(BATCH_COLUMNS)

# PostgreSQL: one statement. `v` numbers every lead with an id from the lead sequence up front, so
# the fingerprint row can name its lead before the lead row exists (Django's foreign keys are
# DEFERRABLE INITIALLY DEFERRED, checked at commit). Fingerprints are inserted in sorted order: two
# transactions with overlapping calls then take the unique-index locks in the same order and wait
# for each other instead of deadlocking; the one that waited sees the other's committed row and
# counts a duplicate. Only the leads whose fingerprint this very insert created (plus the invalid
# ones, which have none) are stored. The answer is one row per report: (b, added, stored).
_PG_INGEST_SQL = f"""
WITH b AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%s::json)
        AS b(b int, {", ".join(f"{name} {kind}" for name, kind in BATCH_COLUMNS.items())})
),
v AS MATERIALIZED (
    SELECT t.*, nextval((SELECT pg_get_serial_sequence('{LEAD_TABLE}', 'id'))::regclass) AS lead_id
    FROM json_to_recordset(%s::json)
        AS t(fp text, b int, {", ".join(f"{name} {kind}" for name, kind in ROW_COLUMNS.items())})
),
fp AS (
    INSERT INTO {FINGERPRINT_TABLE} (fingerprint, scope, lead_id, created_at)
    SELECT v.fp, %s, v.lead_id, %s FROM v WHERE v.fp IS NOT NULL ORDER BY v.fp
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING fingerprint
),
leads AS (
    INSERT INTO {LEAD_TABLE} (id, {_ROW_NAMES}, {_BATCH_NAMES}, local_day, created_at)
    SELECT v.lead_id, {", ".join(f"v.{name}" for name in ROW_COLUMNS)},
           {", ".join(f"b.{name}" for name in BATCH_COLUMNS)}, %s, %s
    FROM v JOIN b ON b.b = v.b LEFT JOIN fp ON fp.fingerprint = v.fp
    WHERE v.fp IS NULL OR fp.fingerprint IS NOT NULL
    ORDER BY v.lead_id
    RETURNING id
)
SELECT v.b, count(fp.fingerprint), count(leads.id)
FROM v LEFT JOIN fp ON fp.fingerprint = v.fp LEFT JOIN leads ON leads.id = v.lead_id
GROUP BY v.b
"""

# SQLite: each statement also takes its whole call as one JSON parameter (json_each), so a call is
# three queries however large, and SQLite's 999-parameter limit never splits it. SQLite writes are
# serialized (one writer; settings open IMMEDIATE transactions), and the fingerprint insert is an
# upsert that returns only the rows it inserted, like on PostgreSQL (RETURNING needs SQLite 3.35).
# json_extract gives a nested object (`extra`) as its JSON text, which is how Django stores a
# JSONField on SQLite.
_SQLITE_FINGERPRINT_SQL = f"""
INSERT INTO {FINGERPRINT_TABLE} (fingerprint, scope, lead_id, created_at)
SELECT value, %s, NULL, %s FROM json_each(%s) WHERE true ORDER BY value
ON CONFLICT (fingerprint) DO NOTHING
RETURNING fingerprint
"""
_SQLITE_LEADS_SQL = f"""
INSERT INTO {LEAD_TABLE} ({_ROW_NAMES}, {_BATCH_NAMES}, local_day, created_at)
SELECT {", ".join(f"json_extract(r.value, '$.{name}')" for name in ROW_COLUMNS)},
       {", ".join(f"json_extract(b.value, '$.{name}')" for name in BATCH_COLUMNS)}, %s, %s
FROM json_each(%s) AS r JOIN json_each(%s) AS b ON b.key = json_extract(r.value, '$.b')
ORDER BY r.key
RETURNING id, phone_e164
"""
_SQLITE_LINK_SQL = f"""
UPDATE {FINGERPRINT_TABLE} SET lead_id = json_extract(j.value, '$[1]')
FROM json_each(%s) AS j
WHERE {FINGERPRINT_TABLE}.fingerprint = json_extract(j.value, '$[0]')
"""

# Both databases: add the call's counts to their hourly buckets, atomically, in the same transaction.
# One row per (provider, worker): an upsert may not touch one row twice in a statement.
_COUNTER_COLUMNS = ("hour", "local_day", "provider", "worker_id", "added", "duplicates",
                    "duplicates_in_batch", "duplicates_existing", "invalid", "suppressed", "updated_at")
_COUNTER_SQL = f"""
INSERT INTO {COUNTER_TABLE} ({", ".join(_COUNTER_COLUMNS)})
VALUES {{values}}
ON CONFLICT (hour, provider, worker_id) DO UPDATE SET
    added = {COUNTER_TABLE}.added + excluded.added,
    duplicates = {COUNTER_TABLE}.duplicates + excluded.duplicates,
    duplicates_in_batch = {COUNTER_TABLE}.duplicates_in_batch + excluded.duplicates_in_batch,
    duplicates_existing = {COUNTER_TABLE}.duplicates_existing + excluded.duplicates_existing,
    invalid = {COUNTER_TABLE}.invalid + excluded.invalid,
    suppressed = {COUNTER_TABLE}.suppressed + excluded.suppressed,
    updated_at = excluded.updated_at
"""
COUNT_FIELDS = ("added", "duplicates", "duplicates_in_batch", "duplicates_existing", "invalid", "suppressed")


def db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """Adapt a value the way the ORM would for this column (SQLite stores dates, UUIDs as text)."""
    field: Any = model._meta.get_field(field_name)
    return field.get_db_prep_value(value, connection, prepared=False)


def batch_json(objects: list[Any]) -> str:
    # UTF-8 text (half the bytes of \u escapes for Arabic); the schema has already refused NUL and
    # lone surrogates, which neither database would take.
    return json_bytes(objects).decode()


def _server_binding_cursor() -> Any:
    """A Django cursor on the current connection that sends parameters apart from the statement.

    Django's default psycopg cursor binds on the client: it escapes every parameter into the SQL
    text, and PostgreSQL then parses that text. For one 150 KB JSON batch that is about 0.7 ms of
    CPU on each side per report; sent as a parameter, neither side looks at it until json_to_recordset.
    The cursor is wrapped like Django's own, so query logging and execute wrappers still see it.
    With LEADOPS_DB_PREPARE (the default) every cursor binds this way and the statement is prepared
    after a few runs; with it off nothing is prepared, which a transaction-mode pooler needs (DEPLOY.md).
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    # The stubs know only Django's own cursor wrapper; psycopg's server-binding cursor is one too.
    raw: Any = ServerBindingCursor(connection.connection)  # type: ignore[call-arg]
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def leads_insert(*, rows: list[dict[str, Any]], batches: list[dict[str, Any]], scope: str,
                 received_at: dt.datetime) -> dict[int, tuple[int, int]]:
    """Store the rows whose fingerprint is new here (and every row without one).

    `rows` carry `fp` and `b`; `batches[b]` carries BATCH_COLUMNS. Answers, per report index that
    has rows, (leads added, leads stored): the caller checks that they agree.
    """
    day = db_value(Lead, "local_day", timezone.localtime(received_at).date())
    created = db_value(Lead, "created_at", received_at)
    fingerprint_created = db_value(LeadFingerprint, "created_at", received_at)
    if connection.vendor == "postgresql":
        params = [batch_json(batches), batch_json(rows), scope, fingerprint_created, day, created]
        with _server_binding_cursor() as cursor:
            cursor.execute(_PG_INGEST_SQL, params)
            return {b: (added, stored) for b, added, stored in cursor.fetchall()}
    fingerprints = [row["fp"] for row in rows if row["fp"] is not None]
    counts: dict[int, tuple[int, int]] = {}
    with connection.cursor() as cursor:
        added: set[str] = set()
        if fingerprints:
            cursor.execute(_SQLITE_FINGERPRINT_SQL, [scope, fingerprint_created, json.dumps(fingerprints)])
            added = {fingerprint for (fingerprint,) in cursor.fetchall()}
        keep = [row for row in rows if row["fp"] is None or row["fp"] in added]
        for row in rows:
            new, stored = counts.get(row["b"], (0, 0))
            counts[row["b"]] = (new + (row["fp"] in added), stored)
        if not keep:
            return counts
        cursor.execute(_SQLITE_LEADS_SQL, [day, created, batch_json(keep), batch_json(batches)])
        lead_ids = cursor.fetchall()
        if len(lead_ids) != len(keep):
            raise RuntimeError(f"Ingest stored {len(lead_ids)} leads of {len(keep)}.")
        for row in keep:
            new, stored = counts[row["b"]]
            counts[row["b"]] = (new, stored + 1)
        # Within one call the scope is one and an E.164 is kept once, so it names one fingerprint.
        by_e164 = {row["phone_e164"]: row["fp"] for row in keep if row["fp"] is not None}
        links = [[by_e164[e164], lead_id] for lead_id, e164 in lead_ids if e164 is not None]
        if links:
            cursor.execute(_SQLITE_LINK_SQL, [json.dumps(links)])
    return counts


def ingest_counters_add(*, received_at: dt.datetime,
                        totals: Sequence[tuple[str, str, dict[str, int]]]) -> None:
    """Add (provider, worker_id, counts) to their hourly `IngestCounter` buckets (the dashboards'
    per-provider, per-worker numbers, purged by retention), one statement for all of them."""
    if not totals:
        return
    local = timezone.localtime(received_at)
    # The hour is cut in local time, so a bucket never straddles a local midnight.
    hour = db_value(IngestCounter, "hour", local.replace(minute=0, second=0, microsecond=0))
    day = db_value(IngestCounter, "local_day", local.date())
    updated = db_value(IngestCounter, "updated_at", timezone.now())
    params: list[Any] = []
    # Sorted, so two calls that touch the same buckets lock them in the same order.
    for provider, worker_id, counts in sorted(totals, key=lambda total: (total[0], total[1])):
        params += [hour, day, provider, worker_id, *(counts[name] for name in COUNT_FIELDS), updated]
    one = "(" + ", ".join(["%s"] * len(_COUNTER_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(_COUNTER_SQL.format(values=", ".join([one] * len(totals))), params)
