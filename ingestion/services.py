"""Every write of ingestion: a batch of reported leads becomes added leads, duplicates and invalid leads.

The dedup fingerprint's unique constraint is the truth (docs/SYSTEM_OVERVIEW.md, "Semantics"): the
counts come from what the database's insert actually created (`INSERT ... ON CONFLICT DO NOTHING
RETURNING`), never from a read made before the insert, so two transactions reporting the same phone
at the same moment get exactly one `added` and one duplicate. The number of queries does not grow
with the batch: on PostgreSQL the fingerprints and the leads go in one statement, on SQLite in three.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction
from django.utils import timezone

from core.purge import batched_delete
from core.text import json_bytes
from ingestion.models import IngestCounter, Lead, LeadFingerprint, SuppressedPhone
from ingestion.normalize import PhoneResult, normalize_city, normalize_name, normalize_phone
from ingestion.schema import LeadInput

logger = logging.getLogger(__name__)

DEDUP_SCOPES = ("day", "all")
NAME_KEY_MAX = Lead._meta.get_field("name_normalized").max_length
CITY_KEY_MAX = Lead._meta.get_field("city_normalized").max_length

LEAD_TABLE = Lead._meta.db_table
FINGERPRINT_TABLE = LeadFingerprint._meta.db_table
COUNTER_TABLE = IngestCounter._meta.db_table

# The per-row columns of a lead, with their PostgreSQL types; each lead travels as a JSON object
# with these keys (plus `fp`, its fingerprint or null).
_ROW_COLUMNS: dict[str, str] = {
    "name": "text", "phone_raw": "text", "city": "text", "category": "text", "address": "text",
    "website": "text", "source_url": "text", "external_id": "text", "lat": "float8", "lng": "float8",
    "rating": "float8", "extra": "jsonb", "phone_e164": "text", "phone_valid": "boolean",
    "phone_type": "text", "phone_region": "text", "name_normalized": "text", "city_normalized": "text",
}
# The columns that are the same for every lead of one batch.
_BATCH_COLUMNS = ("provider", "worker_id", "job_id", "attempt_id", "local_day", "created_at")
_ROW_NAMES = ", ".join(_ROW_COLUMNS)
_BATCH_NAMES = ", ".join(_BATCH_COLUMNS)

# PostgreSQL: one statement, the whole batch as one JSON parameter (psycopg dumps one string far
# faster than eighteen arrays). `v` numbers every lead with an id from the lead sequence up front,
# so the fingerprint row can name its lead before the lead row exists (Django's foreign keys are
# DEFERRABLE INITIALLY DEFERRED, checked at commit). Fingerprints are inserted in sorted order:
# two transactions with overlapping batches then take the unique-index locks in the same order and
# wait for each other instead of deadlocking; the one that waited sees the other's committed row
# and counts a duplicate. Only the leads whose fingerprint this very insert created (plus the
# invalid ones, which have none) are stored.
_PG_INGEST_SQL = f"""
WITH v AS MATERIALIZED (
    SELECT t.*, nextval((SELECT pg_get_serial_sequence('{LEAD_TABLE}', 'id'))::regclass) AS lead_id
    FROM json_to_recordset(%s::json)
        AS t(fp text, {", ".join(f"{name} {kind}" for name, kind in _ROW_COLUMNS.items())})
),
fp AS (
    INSERT INTO {FINGERPRINT_TABLE} (fingerprint, scope, lead_id, created_at)
    SELECT v.fp, %s, v.lead_id, %s FROM v WHERE v.fp IS NOT NULL ORDER BY v.fp
    ON CONFLICT (fingerprint) DO NOTHING
    RETURNING fingerprint
),
leads AS (
    INSERT INTO {LEAD_TABLE} (id, {_ROW_NAMES}, {_BATCH_NAMES})
    SELECT v.lead_id, {", ".join(f"v.{name}" for name in _ROW_COLUMNS)}, %s, %s, %s::bigint, %s::uuid, %s, %s
    FROM v LEFT JOIN fp ON fp.fingerprint = v.fp
    WHERE v.fp IS NULL OR fp.fingerprint IS NOT NULL
    ORDER BY v.lead_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM fp), (SELECT count(*) FROM leads)
"""

# SQLite: each statement also takes its whole batch as one JSON parameter (json_each), so a batch
# is one query however large, and SQLite's 999-parameter limit never splits it. SQLite writes are
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
INSERT INTO {LEAD_TABLE} ({_ROW_NAMES}, {_BATCH_NAMES})
SELECT {", ".join(f"json_extract(value, '$.{name}')" for name in _ROW_COLUMNS)}, %s, %s, %s, %s, %s, %s
FROM json_each(%s) ORDER BY key
RETURNING id, phone_e164
"""
_SQLITE_LINK_SQL = f"""
UPDATE {FINGERPRINT_TABLE} SET lead_id = json_extract(j.value, '$[1]')
FROM json_each(%s) AS j
WHERE {FINGERPRINT_TABLE}.fingerprint = json_extract(j.value, '$[0]')
"""

# Both databases: add this batch's counts to its hourly bucket, atomically, in the same transaction.
_COUNTER_SQL = f"""
INSERT INTO {COUNTER_TABLE}
    (hour, local_day, provider, worker_id, added, duplicates, duplicates_in_batch, duplicates_existing,
     invalid, suppressed, updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (hour, provider, worker_id) DO UPDATE SET
    added = {COUNTER_TABLE}.added + excluded.added,
    duplicates = {COUNTER_TABLE}.duplicates + excluded.duplicates,
    duplicates_in_batch = {COUNTER_TABLE}.duplicates_in_batch + excluded.duplicates_in_batch,
    duplicates_existing = {COUNTER_TABLE}.duplicates_existing + excluded.duplicates_existing,
    invalid = {COUNTER_TABLE}.invalid + excluded.invalid,
    suppressed = {COUNTER_TABLE}.suppressed + excluded.suppressed,
    updated_at = excluded.updated_at
"""


@dataclass(frozen=True)
class IngestResult:
    added: int
    duplicates: int
    duplicates_in_batch: int
    duplicates_existing: int
    invalid: int
    # On the suppression list: counted, nothing stored (docs/PRIVACY.md, "Suppression list").
    suppressed: int = 0

    @property
    def total(self) -> int:
        return self.added + self.duplicates + self.invalid + self.suppressed

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added, "duplicates": self.duplicates,
            "duplicates_in_batch": self.duplicates_in_batch,
            "duplicates_existing": self.duplicates_existing, "invalid": self.invalid,
            "suppressed": self.suppressed,
        }


EMPTY_RESULT = IngestResult(added=0, duplicates=0, duplicates_in_batch=0, duplicates_existing=0, invalid=0)


@dataclass(frozen=True, slots=True)
class _Candidate:
    row: LeadInput
    phone: PhoneResult
    fingerprint: str | None


def dedup_scope(*, received_at: dt.datetime) -> str:
    """Return the fingerprint scope of a lead received at `received_at`: its local date, or "all"."""
    mode = getattr(settings, "LEADOPS_DEDUP_SCOPE", "day")
    if mode == "all":
        return "all"
    if mode != "day":
        raise ImproperlyConfigured(f"LEADOPS_DEDUP_SCOPE must be one of {DEDUP_SCOPES}, not {mode!r}.")
    return timezone.localtime(received_at).date().isoformat()


def _fingerprint_hasher() -> Any:
    key = settings.LEADOPS_FINGERPRINT_KEY
    if not key:
        raise ImproperlyConfigured("LEADOPS_FINGERPRINT_KEY is empty; lead fingerprints need a secret key.")
    return hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)


def phone_digest(*, e164: str) -> str:
    """HMAC-SHA256 of an E.164 number under LEADOPS_FINGERPRINT_KEY: the suppression list's key.

    Unlike a fingerprint it has no scope prefix, so one digest names the number on every day.
    """
    hasher = _fingerprint_hasher()
    hasher.update(e164.encode())
    return str(hasher.hexdigest())


def _suppressed_numbers(phones: list[PhoneResult]) -> set[str]:
    """The E.164 numbers of this batch that are on the suppression list: one indexed query, or none."""
    numbers = {phone.e164 for phone in phones if phone.usable and phone.e164 is not None}
    if not numbers:
        return set()
    base = _fingerprint_hasher()
    by_digest: dict[str, str] = {}
    for e164 in numbers:
        hasher = base.copy()
        hasher.update(e164.encode())
        by_digest[hasher.hexdigest()] = e164
    listed = SuppressedPhone.objects.filter(digest__in=list(by_digest)).values_list("digest", flat=True)
    return {by_digest[digest] for digest in listed}


def _classify(
    *, rows: list[LeadInput], phones: list[PhoneResult], scope: str, suppressed: set[str],
) -> tuple[list[_Candidate], int, int, int]:
    """Drop suppressed numbers and repeats inside the batch (the first of a fingerprint stays).

    Returns the rows to store (candidates with a fingerprint, then invalid ones without), the count
    of in-batch duplicates, the count of invalid rows and the count of suppressed rows. A suppressed
    number counts every one of its rows as suppressed, repeats included: none of them is stored.
    """
    # One scope per batch, so a repeated E.164 is a repeated fingerprint: repeats are dropped before
    # hashing. The keyed HMAC state is copied per number: the key schedule is computed once.
    base = _fingerprint_hasher()
    prefix = f"{scope}|"
    seen: set[str] = set()
    candidates: list[_Candidate] = []
    invalid: list[_Candidate] = []
    in_batch = 0
    suppressed_count = 0
    for row, phone in zip(rows, phones, strict=True):
        if not phone.usable or phone.e164 is None:
            invalid.append(_Candidate(row=row, phone=phone, fingerprint=None))
            continue
        if phone.e164 in suppressed:
            suppressed_count += 1
            continue
        if phone.e164 in seen:
            in_batch += 1
            continue
        seen.add(phone.e164)
        hasher = base.copy()
        hasher.update((prefix + phone.e164).encode())
        candidates.append(_Candidate(row=row, phone=phone, fingerprint=hasher.hexdigest()))
    return candidates + invalid, in_batch, len(invalid), suppressed_count


def _row_object(candidate: _Candidate) -> dict[str, Any]:
    row, phone = candidate.row, candidate.phone
    return {
        "fp": candidate.fingerprint, "name": row.name, "phone_raw": row.phone, "city": row.city,
        "category": row.category, "address": row.address, "website": row.website,
        "source_url": row.source_url, "external_id": row.external_id, "lat": row.lat, "lng": row.lng,
        "rating": row.rating, "extra": row.extra or {}, "phone_e164": phone.e164,
        "phone_valid": phone.valid, "phone_type": phone.type, "phone_region": phone.region,
        # NFKC can lengthen text (one ligature such as U+FDFA becomes 18 letters), so the keys are cut
        # to their columns; a key that long is matched by its start anyway.
        "name_normalized": normalize_name(row.name)[:NAME_KEY_MAX],
        "city_normalized": normalize_city(row.city)[:CITY_KEY_MAX],
    }


def _batch_json(objects: list[Any]) -> str:
    # UTF-8 text (half the bytes of \u escapes for Arabic); the schema has already refused NUL and
    # lone surrogates, which neither database would take.
    return json_bytes(objects).decode()


def _db_value(model: type[models.Model], field_name: str, value: Any) -> Any:
    """Adapt a value the way the ORM would for this column (SQLite stores dates, UUIDs as text)."""
    field: Any = model._meta.get_field(field_name)
    return field.get_db_prep_value(value, connection, prepared=False)


def _server_binding_cursor() -> Any:
    """A Django cursor on the current connection that sends parameters apart from the statement.

    Django's default psycopg cursor binds on the client: it escapes every parameter into the SQL
    text, and PostgreSQL then parses that text. For one 150 KB JSON batch that is about 0.7 ms of
    CPU on each side per report; sent as a parameter, neither side looks at it until json_to_recordset.
    The cursor is wrapped like Django's own, so query logging and execute wrappers still see it.
    Nothing is prepared: Django opens psycopg connections with `prepare_threshold=None`, which keeps
    this working behind a transaction-mode pooler (DEPLOY.md).
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    connection.validate_thread_sharing()
    # The stubs know only Django's own cursor wrapper; psycopg's server-binding cursor is one too.
    raw: Any = ServerBindingCursor(connection.connection)  # type: ignore[call-arg]
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)


def _insert_postgresql(*, stored: list[_Candidate], scope: str, batch: tuple[Any, ...],
                       now_db: Any) -> tuple[int, int]:
    params = [_batch_json([_row_object(candidate) for candidate in stored]), scope, now_db, *batch]
    with _server_binding_cursor() as cursor:
        cursor.execute(_PG_INGEST_SQL, params)
        added, stored_count = cursor.fetchone()
    return added, stored_count


def _insert_sqlite(*, stored: list[_Candidate], scope: str, batch: tuple[Any, ...],
                   now_db: Any) -> tuple[int, int]:
    fingerprints = [candidate.fingerprint for candidate in stored if candidate.fingerprint]
    with connection.cursor() as cursor:
        added_fingerprints: set[str] = set()
        if fingerprints:
            cursor.execute(_SQLITE_FINGERPRINT_SQL, [scope, now_db, json.dumps(fingerprints)])
            added_fingerprints = {fingerprint for (fingerprint,) in cursor.fetchall()}
        keep = [c for c in stored if c.fingerprint is None or c.fingerprint in added_fingerprints]
        if not keep:
            return 0, 0
        cursor.execute(_SQLITE_LEADS_SQL, [*batch, _batch_json([_row_object(c) for c in keep])])
        lead_ids = cursor.fetchall()
        # Within one batch the scope is one, so an E.164 names exactly one added fingerprint.
        by_e164 = {c.phone.e164: c.fingerprint for c in keep if c.fingerprint is not None}
        links = [[by_e164[e164], lead_id] for lead_id, e164 in lead_ids if e164 is not None]
        if links:
            cursor.execute(_SQLITE_LINK_SQL, [json.dumps(links)])
    return len(added_fingerprints), len(lead_ids)


def _counter_add(*, received_at: dt.datetime, provider: str, worker_id: str, result: IngestResult) -> None:
    local = timezone.localtime(received_at)
    # The hour is cut in local time, so a bucket never straddles a local midnight.
    hour = local.replace(minute=0, second=0, microsecond=0)
    params = [
        _db_value(IngestCounter, "hour", hour), _db_value(IngestCounter, "local_day", local.date()),
        provider, worker_id, result.added, result.duplicates, result.duplicates_in_batch,
        result.duplicates_existing, result.invalid, result.suppressed,
        _db_value(IngestCounter, "updated_at", timezone.now()),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_COUNTER_SQL, params)


def lead_batch_ingest(
    *,
    rows: list[LeadInput],
    provider: str,
    worker_id: str,
    job_id: int | None = None,
    attempt_id: uuid.UUID | None = None,
    received_at: dt.datetime | None = None,
) -> IngestResult:
    """Store a batch of reported leads and count each exactly once: added, duplicate, invalid or
    suppressed (its number is on the suppression list; nothing of it is stored).

    Runs inside the caller's transaction when there is one (the report of queueing), else in its
    own. Added and invalid leads become `Lead` rows (invalid ones with a null E.164 and no
    fingerprint); duplicates are only counted. The hourly counter of (provider, worker) is updated
    in the same transaction, so counters and tables never disagree.
    """
    if not rows:
        return EMPTY_RESULT
    received_at = received_at or timezone.now()
    scope = dedup_scope(received_at=received_at)
    phones = [normalize_phone(row.phone) for row in rows]
    # Read before the insert, set-based: one query for the whole batch. A number put on the list
    # while this report is in flight is stored once more; the erasure that listed it deletes by
    # number afterwards, so the window is the length of one report transaction.
    suppressed = _suppressed_numbers(phones)
    stored, in_batch, invalid, suppressed_count = _classify(rows=rows, phones=phones, scope=scope,
                                                            suppressed=suppressed)
    candidates = len(stored) - invalid
    batch = (
        provider, worker_id, job_id,
        _db_value(Lead, "attempt_id", attempt_id),
        _db_value(Lead, "local_day", timezone.localtime(received_at).date()),
        _db_value(Lead, "created_at", received_at),
    )
    now_db = _db_value(LeadFingerprint, "created_at", received_at)
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert_sqlite
    with transaction.atomic(savepoint=False):
        added, stored_count = insert(stored=stored, scope=scope, batch=batch, now_db=now_db)
        if stored_count != added + invalid:
            # Cannot happen unless the statements above are wrong; refuse to count what was not stored.
            raise RuntimeError(f"Ingest stored {stored_count} leads for {added} added + {invalid} invalid.")
        existing = candidates - added
        result = IngestResult(
            added=added, duplicates=in_batch + existing, duplicates_in_batch=in_batch,
            duplicates_existing=existing, invalid=invalid, suppressed=suppressed_count,
        )
        _counter_add(received_at=received_at, provider=provider, worker_id=worker_id, result=result)
    logger.debug(
        "Ingested %d leads for provider %s: %d added, %d duplicates (%d in batch), %d invalid, "
        "%d suppressed.",
        len(rows), provider, result.added, result.duplicates, result.duplicates_in_batch, result.invalid,
        result.suppressed,
    )
    return result


# --- Retention (docs/PRIVACY.md, "Retention"): the project's purge_retention composes these. ---


def leads_purge(*, older_than: dt.date, batch_size: int = 5000) -> int:
    """Delete leads received (local day) before `older_than`, in batches on the local_day index.

    Their fingerprints keep existing until `fingerprints_purge` (its cross-day cut is the same
    instant), so a lead purged while its fingerprint lives on is not stored again the same day.
    """
    deleted = 0
    while True:
        ids = list(Lead.objects.filter(local_day__lt=older_than).order_by("pk")
                   .values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            # What on_delete=SET_NULL would do, without Django's collector loading every lead first.
            LeadFingerprint.objects.filter(lead_id__in=ids).update(lead=None)
            deleted += Lead.objects.filter(pk__in=ids, local_day__lt=older_than)._raw_delete(Lead.objects.db)
        if len(ids) < batch_size:
            return deleted


def fingerprints_purge(*, day_scope_before: dt.date, all_scope_older_than: dt.datetime,
                       batch_size: int = 5000) -> int:
    """Delete per-day fingerprints of days before `day_scope_before` and cross-day fingerprints
    created before `all_scope_older_than` (they live as long as their leads).

    A per-day fingerprint dedups only on its own day: after that it is dead weight, kept for a short
    grace so a report that straddles midnight still finds yesterday's.
    """
    per_day = LeadFingerprint.objects.filter(scope__lt=day_scope_before.isoformat()).exclude(scope="all")
    cross_day = LeadFingerprint.objects.filter(scope="all", created_at__lt=all_scope_older_than)
    return (batched_delete(queryset=per_day, batch_size=batch_size, raw=True)
            + batched_delete(queryset=cross_day, batch_size=batch_size, raw=True))


def counters_purge(*, older_than: dt.datetime, batch_size: int = 5000) -> int:
    """Delete hourly ingestion counters of hours before `older_than`."""
    return batched_delete(queryset=IngestCounter.objects.filter(hour__lt=older_than), batch_size=batch_size,
                          raw=True)
