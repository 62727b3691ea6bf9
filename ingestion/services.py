"""Every write of ingestion: a batch of reported leads becomes added leads, duplicates and invalid leads.

The dedup fingerprint's unique constraint is the truth (docs/SYSTEM_OVERVIEW.md, "Semantics"): the
counts come from what the database's insert actually created (`INSERT ... ON CONFLICT DO NOTHING
RETURNING`), never from a read made before the insert, so two transactions reporting the same phone
at the same moment get exactly one `added` and one duplicate. The number of queries grows neither
with the leads nor with the reports of one call (the statements are in `ingestion.statements`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from core.purge import batched_delete, delete_or_count, keyset_batches
from ingestion.cities import city_canonical
from ingestion.models import IngestCounter, Lead, LeadFingerprint, SuppressedPhone
from ingestion.normalize import PhoneResult, normalize_name, normalize_phone
from ingestion.schema import LeadInput
from ingestion.statements import db_value, ingest_counters_add, leads_insert

logger = logging.getLogger(__name__)

DEDUP_SCOPES = ("day", "all")
NAME_KEY_MAX = Lead._meta.get_field("name_normalized").max_length
CITY_KEY_MAX = Lead._meta.get_field("city_normalized").max_length


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


@dataclass(frozen=True)
class IngestBatch:
    """The leads of one report, and where they come from (an attempt of a job, or none: a probe)."""

    rows: list[LeadInput]
    provider: str
    worker_id: str
    job_id: int | None = None
    attempt_id: uuid.UUID | None = None


def dedup_scope(*, received_at: dt.datetime) -> str:
    """Return the fingerprint scope of a lead received at `received_at`: its local date, or "all"."""
    mode = getattr(settings, "LEADOPS_DEDUP_SCOPE", "day")
    if mode == "all":
        return "all"
    if mode != "day":
        raise ImproperlyConfigured(f"LEADOPS_DEDUP_SCOPE must be one of {DEDUP_SCOPES}, not {mode!r}.")
    return timezone.localtime(received_at).date().isoformat()


def fingerprint_hasher() -> Any:
    key = settings.LEADOPS_FINGERPRINT_KEY
    if not key:
        raise ImproperlyConfigured("LEADOPS_FINGERPRINT_KEY is empty; lead fingerprints need a secret key.")
    return hmac.new(key.encode("utf-8"), digestmod=hashlib.sha256)


def phone_digest(*, e164: str) -> str:
    """HMAC-SHA256 of an E.164 number under LEADOPS_FINGERPRINT_KEY: the suppression list's key.

    Unlike a fingerprint it has no scope prefix, so one digest names the number on every day.
    """
    hasher = fingerprint_hasher()
    hasher.update(e164.encode())
    return str(hasher.hexdigest())


def _suppressed_numbers(phones: list[PhoneResult]) -> set[str]:
    """The E.164 numbers of this batch that are on the suppression list: one indexed query, or none."""
    numbers = {phone.e164 for phone in phones if phone.usable and phone.e164 is not None}
    if not numbers:
        return set()
    base = fingerprint_hasher()
    by_digest: dict[str, str] = {}
    for e164 in numbers:
        hasher = base.copy()
        hasher.update(e164.encode())
        by_digest[hasher.hexdigest()] = e164
    listed = SuppressedPhone.objects.filter(digest__in=list(by_digest)).values_list("digest", flat=True)
    return {by_digest[digest] for digest in listed}


def _classify(
    *, batches: list[IngestBatch], phones: list[list[PhoneResult]], scope: str, suppressed: set[str],
) -> tuple[list[dict[str, Any]], list[Counter[str]]]:
    """Drop suppressed numbers and repeats (the first of a fingerprint, in report order, stays).

    Returns the rows to store (each report's candidates with a fingerprint, then its invalid rows
    without) and each report's tally: `candidates` (new numbers here), `in_batch`, `earlier`,
    `invalid`, `suppressed`. A number repeated inside one report is an in-batch duplicate;
    a number an earlier report of the same call already carries is a duplicate of an existing lead,
    exactly as if the reports had been ingested one after the other. A suppressed number counts
    every one of its rows as suppressed, repeats included: none of them is stored.
    """
    # One scope per call, so a repeated E.164 is a repeated fingerprint: repeats are dropped before
    # hashing. The keyed HMAC state is copied per number: the key schedule is computed once.
    base = fingerprint_hasher()
    prefix = f"{scope}|"
    first_in: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    tallies: list[Counter[str]] = []
    for index, (batch, batch_phones) in enumerate(zip(batches, phones, strict=True)):
        tally: Counter[str] = Counter()
        invalid: list[dict[str, Any]] = []
        for row, phone in zip(batch.rows, batch_phones, strict=True):
            if not phone.usable or phone.e164 is None:
                invalid.append(_row_object(row=row, phone=phone, fingerprint=None, batch=index))
            elif phone.e164 in suppressed:
                tally["suppressed"] += 1
            elif phone.e164 in first_in:
                if first_in[phone.e164] == index:
                    tally["in_batch"] += 1
                else:
                    tally["earlier"] += 1
            else:
                first_in[phone.e164] = index
                hasher = base.copy()
                hasher.update((prefix + phone.e164).encode())
                rows.append(_row_object(row=row, phone=phone, fingerprint=hasher.hexdigest(), batch=index))
                tally["candidates"] += 1
        tally["invalid"] = len(invalid)
        rows.extend(invalid)
        tallies.append(tally)
    return rows, tallies


def _row_object(*, row: LeadInput, phone: PhoneResult, fingerprint: str | None, batch: int) -> dict[str, Any]:
    city = city_canonical(row.city)
    return {
        "fp": fingerprint, "b": batch, "name": row.name, "phone_raw": row.phone,
        "city": city.name, "city_raw": row.city,
        "category": row.category, "address": row.address, "website": row.website,
        "source_url": row.source_url, "external_id": row.external_id, "lat": row.lat, "lng": row.lng,
        "rating": row.rating, "extra": row.extra or {}, "phone_e164": phone.e164,
        "phone_valid": phone.valid, "phone_type": phone.type, "phone_region": phone.region,
        # NFKC can lengthen text (one ligature such as U+FDFA becomes 18 letters), so the keys are cut
        # to their columns; a key that long is matched by its start anyway.
        "name_normalized": normalize_name(row.name)[:NAME_KEY_MAX],
        "city_normalized": city.key[:CITY_KEY_MAX],
    }


def _batch_columns(*, index: int, batch: IngestBatch) -> dict[str, Any]:
    attempt = db_value(Lead, "attempt_id", batch.attempt_id)
    # UUIDs travel as text: with dashes for PostgreSQL's uuid, as Django's 32 hex digits on SQLite.
    return {"b": index, "provider": batch.provider, "worker_id": batch.worker_id, "job_id": batch.job_id,
            "attempt_id": None if attempt is None else str(attempt)}


def lead_batch_ingest(
    *,
    rows: list[LeadInput],
    provider: str,
    worker_id: str,
    job_id: int | None = None,
    attempt_id: uuid.UUID | None = None,
    received_at: dt.datetime | None = None,
    scope: str | None = None,
) -> IngestResult:
    """Ingest the leads of one report: `lead_batches_ingest` with one batch."""
    batch = IngestBatch(rows=rows, provider=provider, worker_id=worker_id, job_id=job_id,
                        attempt_id=attempt_id)
    return lead_batches_ingest(batches=[batch], received_at=received_at, scope=scope)[0]


def lead_batches_ingest(*, batches: list[IngestBatch], received_at: dt.datetime | None = None,
                        scope: str | None = None) -> list[IngestResult]:
    """Store the leads of many reports and count each exactly once, per report: added, duplicate,
    invalid or suppressed (its number is on the suppression list; nothing of it is stored).

    One call, however many reports and leads: one suppression-list read, one insert of all the
    fingerprints and leads (three statements on SQLite), one upsert of the hourly counters. The
    answer is one result per batch, in order, each as if the batches had been ingested one after
    the other: a number two batches carry is added for the first and a duplicate for the second.

    Runs inside the caller's transaction when there is one (the report of queueing), else in its
    own. Added and invalid leads become `Lead` rows (invalid ones with a null E.164 and no
    fingerprint); duplicates are only counted. The hourly counters of (provider, worker) are updated
    in the same transaction, so counters and tables never disagree.

    `scope` replaces the fingerprint scope of `dedup_scope` only for the probe (`PROBE_SCOPE`), whose
    fingerprints can then never meet a real lead's (docs/RUNBOOK.md, "ingest_probe").
    """
    if not any(batch.rows for batch in batches):
        return [EMPTY_RESULT] * len(batches)
    received_at = received_at or timezone.now()
    scope = scope or dedup_scope(received_at=received_at)
    phones = [[normalize_phone(row.phone) for row in batch.rows] for batch in batches]
    # Read before the insert, set-based: one query for the whole call. A number put on the list
    # while this report is in flight is stored once more; the erasure that listed it deletes by
    # number afterwards, so the window is the length of one report transaction.
    suppressed = _suppressed_numbers([phone for batch_phones in phones for phone in batch_phones])
    rows, tallies = _classify(batches=batches, phones=phones, scope=scope, suppressed=suppressed)
    results: list[IngestResult] = []
    totals: dict[tuple[str, str], Counter[str]] = {}
    with transaction.atomic(savepoint=False):
        columns = [_batch_columns(index=index, batch=batch) for index, batch in enumerate(batches)]
        stored = {}
        if rows:
            stored = leads_insert(rows=rows, batches=columns, scope=scope, received_at=received_at)
        for index, (batch, tally) in enumerate(zip(batches, tallies, strict=True)):
            if not batch.rows:
                results.append(EMPTY_RESULT)
                continue
            added, stored_count = stored.get(index, (0, 0))
            if stored_count != added + tally["invalid"]:
                # Cannot happen unless the statements are wrong; refuse to count what was not stored.
                raise RuntimeError(
                    f"Ingest stored {stored_count} leads for {added} added + {tally['invalid']} invalid.")
            existing = tally["candidates"] - added + tally["earlier"]
            result = IngestResult(
                added=added, duplicates=tally["in_batch"] + existing, duplicates_in_batch=tally["in_batch"],
                duplicates_existing=existing, invalid=tally["invalid"], suppressed=tally["suppressed"],
            )
            results.append(result)
            totals.setdefault((batch.provider, batch.worker_id), Counter()).update(result.as_dict())
        ingest_counters_add(received_at=received_at, totals=[
            (provider, worker, dict(counts)) for (provider, worker), counts in totals.items()])
    logger.debug("Ingested %d leads of %d reports: %d added, %d duplicates, %d invalid, %d suppressed.",
                 sum(len(batch.rows) for batch in batches), len(batches), sum(r.added for r in results),
                 sum(r.duplicates for r in results), sum(r.invalid for r in results),
                 sum(r.suppressed for r in results))
    return results


# --- Retention (docs/PRIVACY.md, "Retention"): the project's purge_retention composes these. ---


def leads_purge(*, older_than: dt.date, batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete leads received (local day) before `older_than`, in batches on the local_day index
    (with `dry_run`, count them in the same batches and delete nothing).

    Their fingerprints keep existing until `fingerprints_purge` (its cross-day cut is the same
    instant), so a lead purged while its fingerprint lives on is not stored again the same day.
    """
    expired = Lead.objects.filter(local_day__lt=older_than)
    deleted = 0
    for ids in keyset_batches(queryset=expired, batch_size=batch_size):
        batch = expired.filter(pk__in=ids)
        if dry_run:
            deleted += batch.count()
            continue
        with transaction.atomic():
            # What on_delete=SET_NULL would do, without Django's collector loading every lead first.
            LeadFingerprint.objects.filter(lead_id__in=ids).update(lead=None)
            deleted += delete_or_count(queryset=batch, dry_run=False, raw=True)
    return deleted


def fingerprints_purge(*, day_scope_before: dt.date, all_scope_older_than: dt.datetime,
                       batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete per-day fingerprints of days before `day_scope_before` and cross-day fingerprints
    created before `all_scope_older_than` (they live as long as their leads).

    A per-day fingerprint dedups only on its own day: after that it is dead weight, kept for a short
    grace so a report that straddles midnight still finds yesterday's.
    """
    per_day = LeadFingerprint.objects.filter(scope__lt=day_scope_before.isoformat()).exclude(scope="all")
    cross_day = LeadFingerprint.objects.filter(scope="all", created_at__lt=all_scope_older_than)
    return (batched_delete(queryset=per_day, batch_size=batch_size, raw=True, dry_run=dry_run)
            + batched_delete(queryset=cross_day, batch_size=batch_size, raw=True, dry_run=dry_run))


def counters_purge(*, older_than: dt.datetime, batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete hourly ingestion counters of hours before `older_than`."""
    return batched_delete(queryset=IngestCounter.objects.filter(hour__lt=older_than), batch_size=batch_size,
                          raw=True, dry_run=dry_run)
