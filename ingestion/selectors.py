"""Reads of ingestion: telemetry from the hourly counters, and lead lookups for the admin.

Telemetry reads only `IngestCounter` (at most one row per provider, worker and hour), never the lead
table, so it answers in milliseconds however many millions of leads are stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.utils import timezone

from ingestion.models import (
    BreachIncident,
    DataSubjectRequest,
    IngestCounter,
    Lead,
    LeadFingerprint,
    RequestStatus,
)
from ingestion.normalize import normalize_name, normalize_phone
from ingestion.services import fingerprint_hasher

TREND_DAYS = 7
_COUNTS = ("added", "duplicates", "duplicates_in_batch", "duplicates_existing", "invalid")


def dup_ratio(*, added: int, duplicates: int) -> float | None:
    """Return duplicates / (added + duplicates), or None when nothing usable was reported.

    None, not 0.0: "no data" must not read as "no duplicates" on a dashboard or to an alert rule.
    Invalid leads are left out: they say nothing about whether a scraper re-finds what it found.
    """
    total = added + duplicates
    return duplicates / total if total else None


def _window(now: dt.datetime | None) -> tuple[dt.datetime, dt.date, dt.datetime]:
    now = now or timezone.now()
    local = timezone.localtime(now)
    # The 24-hour window is the 24 hourly buckets ending with the current one (cut in local time,
    # like the buckets themselves), so it holds between 23 and 24 hours of data.
    since = local.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=23)
    return now, local.date(), since


def _sums(prefix: str, condition: Q | None, names: tuple[str, ...] = _COUNTS) -> dict[str, Sum]:
    return {f"{prefix}{name}": Sum(name, filter=condition) for name in names}


def _pick(row: dict[str, Any], prefix: str, names: tuple[str, ...] = _COUNTS) -> dict[str, int]:
    return {name: int(row.get(f"{prefix}{name}") or 0) for name in names}


def _breakdown(*, key: str, today: dt.date, since: dt.datetime) -> list[dict[str, Any]]:
    """Per `key` (provider or worker_id): today's counts, the last 24 hours' counts and the ratio."""
    in_24h, is_today = Q(hour__gte=since), Q(local_day=today)
    rows = (
        IngestCounter.objects.filter(in_24h | is_today)
        .values(key)
        .annotate(**_sums("today_", is_today), **_sums("h24_", in_24h))
        .order_by(key)
    )
    result = []
    for row in rows:
        last_24h = _pick(row, "h24_")
        result.append({
            key: row[key],
            "today": _pick(row, "today_"),
            "last_24h": last_24h,
            "dup_ratio_24h": dup_ratio(added=last_24h["added"], duplicates=last_24h["duplicates"]),
        })
    return result


def _total(rows: list[dict[str, Any]], part: str) -> dict[str, int]:
    return {name: sum(row[part][name] for row in rows) for name in _COUNTS}


def ingestion_telemetry(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return today's counts, the 24-hour dup ratio, the 7-day trend and per provider / worker breakdowns.

    Days are local days of TIME_ZONE. Three queries on the counter table.
    """
    now, today, since = _window(now)
    first_day = today - dt.timedelta(days=TREND_DAYS - 1)
    per_day: dict[dt.date, dict[str, Any]] = {
        row["local_day"]: dict(row)
        for row in IngestCounter.objects.filter(local_day__gte=first_day, local_day__lte=today)
        .values("local_day")
        .annotate(**_sums("sum_", None))
        .order_by()
    }
    trend = []
    for offset in range(TREND_DAYS):
        day = first_day + dt.timedelta(days=offset)
        counts = _pick(per_day.get(day, {}), "sum_")
        trend.append({
            "day": day.isoformat(),
            "added": counts["added"],
            "duplicates": counts["duplicates"],
            "invalid": counts["invalid"],
            "dup_ratio": dup_ratio(added=counts["added"], duplicates=counts["duplicates"]),
        })
    by_provider = _breakdown(key="provider", today=today, since=since)
    by_worker = _breakdown(key="worker_id", today=today, since=since)
    today_counts = _pick(per_day.get(today, {}), "sum_")
    last_24h = _total(by_provider, "last_24h")
    return {
        "generated_at": now.isoformat(),
        "time_zone": settings.TIME_ZONE,
        "dedup_scope": getattr(settings, "LEADOPS_DEDUP_SCOPE", "day"),
        "today": {
            "day": today.isoformat(),
            **today_counts,
            "dup_ratio": dup_ratio(added=today_counts["added"], duplicates=today_counts["duplicates"]),
        },
        "last_24h": {"since": since.isoformat(), **last_24h},
        "dup_ratio_24h": dup_ratio(added=last_24h["added"], duplicates=last_24h["duplicates"]),
        "trend": trend,
        "by_provider": by_provider,
        "by_worker": by_worker,
    }


def counters_today(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return today's counters (local day): totals, per provider and per worker, for evidence files."""
    now, today, _ = _window(now)
    base = IngestCounter.objects.filter(local_day=today)

    def grouped(key: str) -> list[dict[str, Any]]:
        rows = base.values(key).annotate(**_sums("sum_", None), buckets=Count("id")).order_by(key)
        return [{key: row[key], **_pick(row, "sum_"), "hourly_buckets": row["buckets"]} for row in rows]

    by_provider = grouped("provider")
    by_worker = grouped("worker_id")
    totals = {name: sum(row[name] for row in by_provider) for name in _COUNTS}
    return {
        "day": today.isoformat(),
        "time_zone": settings.TIME_ZONE,
        "generated_at": now.isoformat(),
        "totals": totals,
        "by_provider": by_provider,
        "by_worker": by_worker,
    }


def counter_providers() -> list[str]:
    """Return the providers that ever ingested a lead (from the small counter table)."""
    return list(IngestCounter.objects.order_by("provider").values_list("provider", flat=True).distinct())


def counter_worker_ids() -> list[str]:
    """Return the workers that ever ingested a lead (from the small counter table)."""
    return list(IngestCounter.objects.order_by("worker_id").values_list("worker_id", flat=True).distinct())


def lead_recent_cities(*, sample: int = 20_000, limit: int = 30) -> list[tuple[str, str]]:
    """Return (key, display name) of the most frequent cities among the latest `sample` leads.

    A window of primary keys, not of days: grouping a week of a busy fleet's leads would scan
    millions of rows on every changelist page, this reads at most `sample` rows by the primary key.
    Every spelling of a city shares its key (ingestion/cities.py), so each city is offered once.
    """
    latest = Lead.objects.order_by("-id").values_list("id", flat=True).first()
    if latest is None:
        return []
    rows = (
        Lead.objects.filter(id__gt=latest - sample)
        .exclude(city_normalized="")
        .values("city_normalized")
        .annotate(leads=Count("id"), name=Min("city"))
        .order_by("-leads", "city_normalized")[:limit]
    )
    return [(row["city_normalized"], row["name"]) for row in rows]


def lead_search(*, queryset: QuerySet[Lead], term: str) -> QuerySet[Lead]:
    """Filter leads by a phone in any format (matched on E.164) or by a part of the normalized name."""
    term = term.strip()
    if not term:
        return queryset
    condition = Q()
    phone = normalize_phone(term)
    if phone.usable:
        condition |= Q(phone_e164=phone.e164)
    name = normalize_name(term)
    if name:
        condition |= Q(name_normalized__contains=name)
    return queryset.filter(condition) if condition else queryset.none()


def probe_database_check(*, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return what the tables hold for the probe today, to set beside the probe's own counts."""
    today = timezone.localtime(now or timezone.now()).date()
    leads = Lead.objects.filter(provider="probe", worker_id="probe", local_day=today)
    counts = leads.aggregate(
        added=Count("id", filter=Q(phone_e164__isnull=False)),
        invalid=Count("id", filter=Q(phone_e164__isnull=True)),
    )
    counter = IngestCounter.objects.filter(provider="probe", worker_id="probe", local_day=today).aggregate(
        **_sums("sum_", None)
    )
    return {
        "day": today.isoformat(),
        "leads_added_today": counts["added"],
        "leads_invalid_today": counts["invalid"],
        "fingerprints_of_probe_leads_today": LeadFingerprint.objects.filter(lead__in=leads).count(),
        "counters_today": _pick(counter, "sum_"),
    }


def requests_due_by(*, moment: dt.datetime) -> list[tuple[int, str, dt.datetime]]:
    """(id, kind, due_at) of every open data-subject request due at or before `moment` (alerts)."""
    return list(DataSubjectRequest.objects
                .filter(status__in=[RequestStatus.OPEN, RequestStatus.EXTENDED], due_at__lte=moment)
                .order_by("due_at", "id").values_list("id", "kind", "due_at"))


def breaches_unnotified(*, discovered_before: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(id, discovered_at) of every open breach discovered before then with no notification recorded."""
    return list(BreachIncident.objects
                .filter(notified_at__isnull=True, closed_at__isnull=True,
                        discovered_at__lte=discovered_before)
                .order_by("discovered_at", "id").values_list("id", "discovered_at"))

def lead_dedup_decision(*, lead: Lead) -> dict[str, Any]:
    """What deduplication decided for a stored lead (the lineage page, docs/RUNBOOK.md "Lineage").

    A lead without a usable phone is stored as invalid and never deduplicated. A lead with one was
    stored because its fingerprint (scope + E.164, keyed) was new: the fingerprint row names the lead
    that was added first. The fingerprint is recomputed, so no phone is read back out of it.
    """
    if not lead.phone_e164:
        return {"decision": "invalid", "why": "no usable phone: stored as invalid, not deduplicated"}
    scope = "all" if getattr(settings, "LEADOPS_DEDUP_SCOPE", "day") == "all" else lead.local_day.isoformat()
    hasher = fingerprint_hasher()
    hasher.update(f"{scope}|{lead.phone_e164}".encode())
    row = LeadFingerprint.objects.filter(fingerprint=hasher.hexdigest()).first()
    if row is None:
        return {"decision": "added", "scope": scope,
                "why": "added; its fingerprint row has since been purged (retention)"}
    first = row.lead_id == lead.pk
    return {"decision": "added" if first else "kept beside an earlier lead", "scope": scope,
            "fingerprint": f"{row.fingerprint[:12]}…", "first_lead_id": row.lead_id,
            "fingerprint_created_at": row.created_at,
            "why": ("the first lead of its fingerprint in scope " + scope) if first
            else f"the fingerprint of scope {scope} belongs to lead {row.lead_id}"}
