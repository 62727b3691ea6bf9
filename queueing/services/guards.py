"""The claim guard: breakers and provider quotas asked (and settled) inside the claim."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import connection
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.timezone import localdate as local_date

from core.ratelimit import gcra_tat_after, gcra_tokens_available, gcra_wait_s
from queueing.models import (
    Breaker,
    BreakerScope,
    BreakerState,
    ProviderQuotaState,
)
from queueing.services.breakers import breaker_half_open, breaker_probes_renew
from workers_mgmt.models import Worker

if TYPE_CHECKING:
    from queueing.services.claim import Claim



class QuotaHold(NamedTuple):
    """A provider quota as the claim read it, under its locked row, to settle after the claim."""

    provider_id: int
    per_min: int | None
    burst: int
    daily_cap: int | None
    tat: float
    today: dt.date
    used_today: int


@dataclass
class _Guard:
    max_jobs: int
    skip: set[str]  # providers that hand out nothing now (open breaker, no quota left)
    limited: dict[str, int]  # provider -> most jobs this pull may take from it
    wait_s: float | None = None
    worker_blocked: bool = False
    quotas: dict[str, QuotaHold] | None = None
    probes: dict[str, int] | None = None  # provider name or "" (the worker) -> breaker pk

    def limit(self, name: str, most: int, wait_s: float | None = None) -> None:
        most = min(most, self.limited.get(name, most))
        self.limited[name] = most
        if most < 1:
            self.skip.add(name)
            if wait_s is not None:
                self.wait_s = wait_s if self.wait_s is None else min(self.wait_s, wait_s)


_GUARD_SQL = """
SELECT b.scope, b.key, b.state, b.retry_at, 0, NULL, NULL, NULL
  FROM queueing_breaker b
 WHERE b.state <> 'closed' AND (b.scope = 'provider' OR (b.scope = 'worker' AND b.key = %s))
UNION ALL
SELECT 'quota', p.name, '', NULL, p.id, p.quota_per_min, p.quota_burst, p.daily_cap
  FROM queueing_provider p
 WHERE p.enabled AND (p.quota_per_min IS NOT NULL OR p.daily_cap IS NOT NULL)
"""


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, dt.datetime) else parse_datetime(value)
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def claim_guard(*, worker: Worker, max_jobs: int, now: dt.datetime) -> _Guard:
    guard = _Guard(max_jobs=max_jobs, skip=set(), limited={})
    with connection.cursor() as cursor:
        cursor.execute(_GUARD_SQL, [worker.pk])
        rows = cursor.fetchall()
    if not rows:
        return guard
    half_open: list[tuple[str, str]] = []
    quota_rows = []
    for scope, key, state, retry_at, provider_id, per_min, burst, cap in rows:
        if scope == "quota":
            quota_rows.append((key, provider_id, per_min, burst, cap))
            continue
        retry_at = _as_datetime(retry_at)
        if (state == BreakerState.OPEN and retry_at is not None and retry_at <= now
                and breaker_half_open(scope=scope, key=key, now=now)):
            state = BreakerState.HALF_OPEN
        if state == BreakerState.HALF_OPEN:
            half_open.append((scope, key))
        elif scope == BreakerScope.WORKER:
            guard.max_jobs, guard.worker_blocked = 0, True
            guard.wait_s = (retry_at - now).total_seconds() if retry_at else None
            return guard
        else:
            guard.limit(key, 0)
    if half_open:
        # Probes are reserved under the breaker's row lock, so concurrent pulls never hand out
        # more than N probe jobs between them.
        locked = Breaker.objects.select_for_update().filter(state=BreakerState.HALF_OPEN).filter(
            Q(*[Q(scope=scope, key=key) for scope, key in half_open], _connector=Q.OR)
        )
        guard.probes = {}
        for breaker in locked:
            if breaker.probes_left == 0:
                breaker_probes_renew(breaker=breaker, now=now)
            if breaker.scope == BreakerScope.WORKER:
                guard.max_jobs = min(guard.max_jobs, breaker.probes_left)
                guard.probes[""] = breaker.pk
            else:
                guard.limit(breaker.key, breaker.probes_left)
                guard.probes[breaker.key] = breaker.pk
        if guard.max_jobs < 1:
            return guard
    if quota_rows:
        _claim_guard_quotas(guard=guard, quota_rows=quota_rows, now=now)
    return guard


def _claim_guard_quotas(*, guard: _Guard, quota_rows: list, now: dt.datetime) -> None:
    # An UPSERT that changes nothing still locks the row: every claim of a quota provider waits
    # for the one before it, and reads the TAT it left.
    table = ProviderQuotaState._meta.db_table
    values = ", ".join(["(%s, 0.0, 0)"] * len(quota_rows))
    ids = sorted(row[1] for row in quota_rows)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (provider_id, tat, day_count) VALUES {values} "
            f"ON CONFLICT (provider_id) DO UPDATE SET tat = {table}.tat "
            f"RETURNING provider_id, tat, day, day_count",
            ids,
        )
        states = {row[0]: row[1:] for row in cursor.fetchall()}
    today = local_date(now)
    now_s = now.timestamp()
    guard.quotas = {}
    for name, provider_id, per_min, burst, cap in quota_rows:
        tat, day, day_count = states[provider_id]
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        used = day_count if day == today else 0
        most = guard.max_jobs
        wait = None
        if per_min:
            most = gcra_tokens_available(tat=tat, now=now_s, per_minute=per_min, burst=burst, wanted=most)
            wait = gcra_wait_s(tat=tat, now=now_s, per_minute=per_min, burst=burst)
        if cap is not None and cap - used < most:
            most = max(0, cap - used)
            if most < 1:
                wait = _seconds_to_local_midnight(now)
        guard.limit(name, most, wait)
        guard.quotas[name] = QuotaHold(provider_id=provider_id, per_min=per_min, burst=burst, daily_cap=cap,
                                       tat=tat, today=today, used_today=used)


def _seconds_to_local_midnight(now: dt.datetime) -> float:
    local = timezone.localtime(now)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds()


def claim_guard_settle(*, guard: _Guard, claims: list[Claim], now: dt.datetime) -> None:
    """Take the quota tokens and probes of the jobs handed out (the guard rows are still locked)."""
    if not guard.quotas and not guard.probes:
        return
    per_provider: dict[str, int] = {}
    for claim in claims:
        per_provider[claim.provider] = per_provider.get(claim.provider, 0) + 1
    for name, hold in (guard.quotas or {}).items():
        taken = per_provider.get(name, 0)
        if taken:
            new_tat = hold.tat
            if hold.per_min:
                new_tat = gcra_tat_after(tat=hold.tat, now=now.timestamp(), per_minute=hold.per_min,
                                         taken=taken)
            ProviderQuotaState.objects.filter(provider_id=hold.provider_id).update(
                tat=new_tat, day=hold.today, day_count=hold.used_today + taken
            )
    for name, breaker_pk in (guard.probes or {}).items():
        taken = len(claims) if name == "" else per_provider.get(name, 0)
        if taken:
            Breaker.objects.filter(pk=breaker_pk).update(probes_left=F("probes_left") - taken,
                                                         updated_at=now)
