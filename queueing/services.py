"""Every write of the job queue: enqueue, claim, extend, release, report, reap, cancel, requeue.

Each function is one transaction. State changes are compare-and-swap (`filter(state=X).update()`
with a count check) or happen under a row lock, never read-modify-write across two queries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, CharField, DateTimeField, F, Max, Q, Sum, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ingestion.schema import LeadInput
from ingestion.services import lead_batch_ingest
from leadops import events
from leadops.clock import local_date
from leadops.clock import now as clock_now
from leadops.counters import counters_add
from leadops.errors import Conflict, Forbidden, NotFound, ValidationFailed
from leadops.events import publish
from leadops.ratelimit import gcra_tat_after, gcra_tokens_available, gcra_wait_s
from queueing.models import (
    FINISHED_STATES,
    AttemptState,
    Breaker,
    BreakerOutcome,
    BreakerScope,
    BreakerState,
    BreakerTransition,
    Campaign,
    Job,
    JobAttempt,
    JobState,
    Provider,
    ProviderQuotaState,
    ReportReceipt,
)
from workers_mgmt.models import Worker

logger = logging.getLogger(__name__)


class AttemptSuperseded(Conflict):
    code = "attempt_superseded"
    message = "A newer attempt of this job exists; this report changes nothing."


class JobFinished(Conflict):
    code = "job_finished"
    message = "The job is already finished."


class AttemptNotOwned(Forbidden):
    code = "attempt_not_owned"
    message = "This attempt belongs to another worker."


class JobNotFound(NotFound):
    code = "job_not_found"
    message = "No such job."


class AttemptNotFound(NotFound):
    code = "attempt_not_found"
    message = "No such attempt for this job."


class IdempotencyKeyReused(ValidationFailed):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request."


# --- backoff -------------------------------------------------------------------------------------


def backoff_delay_s(*, attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """DESIGN.md section 7: d = min(cap, base * 2**(attempt-1)); wait d/2 + random(0, d/2)."""
    exponent = max(0, attempt - 1)
    # Cap the exponent before computing 2**n so a huge attempt number cannot overflow a float.
    d = float(cap_s) if exponent >= 62 else min(float(cap_s), float(base_s) * (2**exponent))
    return d / 2 + (rng or random).uniform(0, d / 2)


# --- enqueue -------------------------------------------------------------------------------------


def provider_get_or_create(*, name: str) -> Provider:
    provider = Provider.objects.filter(name=name).first()
    if provider is not None:
        return provider
    candidate = Provider(name=name)
    candidate.full_clean()
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
    except IntegrityError:
        return Provider.objects.get(name=name)
    return candidate


def provider_policy_set(
    *, name: str, enabled: bool | None = None, max_attempts: int | None = None,
    lease_seconds: int | None = None, quota_per_min: int | None = None, quota_burst: int | None = None,
    daily_cap: int | None = None,
) -> tuple[Provider, bool]:
    """Create or change a provider's policy; a quota or cap of 0 removes it. Returns (provider, created)."""
    with transaction.atomic():
        provider = Provider.objects.select_for_update().filter(name=name).first()
        created = provider is None
        if created:
            provider = Provider(name=name)
        before = {} if created else {field: getattr(provider, field) for field in _POLICY_FIELDS}
        changes = {"enabled": enabled, "max_attempts": max_attempts, "lease_seconds": lease_seconds,
                   "quota_burst": quota_burst}
        for field, value in changes.items():
            if value is not None:
                setattr(provider, field, value)
        if quota_per_min is not None:
            provider.quota_per_min = quota_per_min or None
        if daily_cap is not None:
            provider.daily_cap = daily_cap or None
        provider.full_clean()
        provider.save()
    if changed := _policy_changes(before, provider):
        # The command line has no admin user to record a LogEntry for; the log keeps the trail.
        logger.info("provider %s %s: %s", name, "created" if created else "changed",
                    ", ".join(f"{field} {old!r} -> {new!r}" for field, (old, new) in changed.items()))
    return provider, created


_POLICY_FIELDS = ("enabled", "max_attempts", "lease_seconds", "quota_per_min", "quota_burst", "daily_cap")


def _policy_changes(before: dict[str, Any], provider: Provider) -> dict[str, tuple[Any, Any]]:
    return {field: (before.get(field), getattr(provider, field)) for field in _POLICY_FIELDS
            if before.get(field) != getattr(provider, field)}


def jobs_enqueue(
    *, provider: Provider, payloads: Sequence[dict[str, Any]], priority: int = 0,
    campaign: Campaign | None = None, run_at: dt.datetime | None = None,
) -> list[Job]:
    """Create queued jobs, ready at `run_at` (now by default)."""
    at = run_at or clock_now()
    jobs = [
        Job(provider=provider, campaign=campaign, payload=payload, priority=priority, run_at=at,
            max_attempts=provider.max_attempts, state=JobState.QUEUED)
        for payload in payloads
    ]
    with transaction.atomic():
        return Job.objects.bulk_create(jobs, batch_size=1000)


def campaign_enqueue(*, campaign: Campaign) -> int:
    """Turn a campaign into one job per (query, city); a campaign is enqueued once."""
    with transaction.atomic():
        claimed = Campaign.objects.filter(pk=campaign.pk, enqueued_at__isnull=True).update(
            enqueued_at=clock_now()
        )
        if not claimed:
            raise Conflict("This campaign was already enqueued.", code="campaign_already_enqueued")
        payloads = [
            {"query": query, "city": city, "campaign": campaign.pk}
            for query in campaign.query_list() for city in campaign.city_list()
        ]
        jobs_enqueue(provider=campaign.provider, payloads=payloads, priority=campaign.priority,
                     campaign=campaign)
        Campaign.objects.filter(pk=campaign.pk).update(jobs_created=len(payloads))
    return len(payloads)


# --- claim ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt_id: uuid.UUID
    attempt: int
    provider: str
    payload: dict[str, Any]
    lease_expires_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.job_id, "attempt_id": str(self.attempt_id), "attempt": self.attempt,
            "provider": self.provider, "payload": self.payload,
            "lease_expires_at": self.lease_expires_at.isoformat(),
        }


@dataclass(frozen=True)
class PullResult:
    claims: list[Claim]
    # Seconds a throttled worker should wait (its breaker is open, or every ready provider is at
    # its quota or breaker limit); None when nothing throttled this pull.
    throttled_for_s: float | None = None
    # True when the worker's own breaker is open: it should wait the whole throttled_for_s.
    worker_blocked: bool = False


def job_claim(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None = None) -> list[Claim]:
    """Lease up to `max_jobs` ready jobs to `worker`, creating one attempt per job."""
    return jobs_pull(worker=worker, max_jobs=max_jobs, providers=providers).claims


def jobs_pull(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None = None) -> PullResult:
    """The claim with its guards: breakers (provider and worker) and provider quotas.

    One read finds every non-closed breaker that concerns this pull and every provider with a
    quota; only when one exists do the guard rows get locked (half-open probes, quota state), so
    the common pull costs one statement more than the bare claim. Quota tokens and probes are
    taken for the jobs actually handed out, in the claim's transaction.
    """
    if max_jobs < 1:
        return PullResult(claims=[])
    now = clock_now()
    with transaction.atomic():
        guard = _claim_guard(worker=worker, max_jobs=max_jobs, now=now)
        if guard.max_jobs < 1:
            return PullResult(claims=[], throttled_for_s=guard.wait_s, worker_blocked=guard.worker_blocked)
        if connection.vendor == "postgresql":
            claims = _claim_postgresql(worker=worker, max_jobs=guard.max_jobs, providers=providers,
                                       now=now, skip=guard.skip, limited=guard.limited)
        else:
            claims = _claim_serialized(worker=worker, max_jobs=guard.max_jobs, providers=providers,
                                       now=now, skip=guard.skip, limited=guard.limited)
        if claims:
            JobAttempt.objects.bulk_create(
                [
                    JobAttempt(id=claim.attempt_id, job_id=claim.job_id, number=claim.attempt,
                               worker=worker, claimed_at=now, lease_expires_at=claim.lease_expires_at)
                    for claim in claims
                ],
                batch_size=100,
            )
            counters_add(amounts={"claims": len(claims)})
            # One batch for the whole claim: one stored INSERT and one group message on commit.
            events.publish_many("job.claimed", [
                {"job_id": c.job_id, "attempt_id": str(c.attempt_id), "attempt": c.attempt,
                 "provider": c.provider, "worker_id": worker.pk}
                for c in claims
            ])
            _claim_guard_settle(guard=guard, claims=claims, now=now)
    return PullResult(claims=claims, throttled_for_s=None if claims else guard.wait_s)


@dataclass
class _Guard:
    max_jobs: int
    skip: set[str]  # providers that hand out nothing now (open breaker, no quota left)
    limited: dict[str, int]  # provider -> most jobs this pull may take from it
    wait_s: float | None = None
    worker_blocked: bool = False
    quotas: dict[str, tuple[int, int | None, int, int | None, float, dt.date, int]] | None = None
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


def _claim_guard(*, worker: Worker, max_jobs: int, now: dt.datetime) -> _Guard:
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
                and _breaker_half_open(scope=scope, key=key, now=now)):
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
                _breaker_probes_renew(breaker=breaker, now=now)
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
        guard.quotas[name] = (provider_id, per_min, burst, cap, tat, today, used)


def _seconds_to_local_midnight(now: dt.datetime) -> float:
    local = timezone.localtime(now)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds()


def _claim_guard_settle(*, guard: _Guard, claims: list[Claim], now: dt.datetime) -> None:
    """Take the quota tokens and probes of the jobs handed out (the guard rows are still locked)."""
    if not guard.quotas and not guard.probes:
        return
    per_provider: dict[str, int] = {}
    for claim in claims:
        per_provider[claim.provider] = per_provider.get(claim.provider, 0) + 1
    for name, (provider_id, per_min, _burst, _cap, tat, today, used) in (guard.quotas or {}).items():
        taken = per_provider.get(name, 0)
        if taken:
            new_tat = gcra_tat_after(tat=tat, now=now.timestamp(), per_minute=per_min, taken=taken) \
                if per_min else tat
            ProviderQuotaState.objects.filter(provider_id=provider_id).update(
                tat=new_tat, day=today, day_count=used + taken
            )
    for name, breaker_pk in (guard.probes or {}).items():
        taken = len(claims) if name == "" else per_provider.get(name, 0)
        if taken:
            Breaker.objects.filter(pk=breaker_pk).update(probes_left=F("probes_left") - taken,
                                                         updated_at=now)


_CLAIM_SQL = """
WITH {ready_ctes}
UPDATE queueing_job j
   SET state = 'leased',
       attempts = j.attempts + 1,
       leased_by_id = %(worker_id)s,
       current_attempt_id = gen_random_uuid(),
       lease_expires_at = %(now)s + p.lease_seconds * interval '1 second',
       updated_at = %(now)s
  FROM ready, queueing_provider p
 WHERE j.id = ready.id AND p.id = j.provider_id
RETURNING j.id, j.current_attempt_id, j.attempts, p.name, j.payload, j.lease_expires_at
"""

# The head of the ready queue, locked; {extra} narrows it (provider choice, breakers, quotas).
_READY_SQL = """
    SELECT j.id, j.priority, j.run_at
      FROM queueing_job j
      JOIN queueing_provider p ON p.id = j.provider_id
     WHERE j.state = 'queued' AND j.run_at <= %(now)s AND p.enabled {extra}
     ORDER BY j.priority DESC, j.run_at, j.id
     LIMIT %({limit})s
       FOR UPDATE OF j SKIP LOCKED
"""


def _claim_postgresql(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None,
                      now: dt.datetime, skip: set[str] | None = None,
                      limited: dict[str, int] | None = None) -> list[Claim]:
    # One statement: materialized CTEs pick and lock the head of the queue (skipping rows other
    # claimers hold), and the UPDATE leases exactly those rows. Eligibility is filtered inside
    # the CTEs so an ineligible row never takes a LIMIT slot. A provider held to fewer jobs (its
    # quota, its half-open probes) gets its own CTE with its own LIMIT; the best `max_jobs` of
    # all CTEs are leased (rows locked but not picked stay queued).
    params: dict[str, Any] = {"now": now, "limit": max_jobs, "worker_id": worker.pk}
    provider_filter = ""
    if providers:
        provider_filter = "AND p.name = ANY(%(providers)s)"
        params["providers"] = list(providers)
    skip = set(skip or ())
    capped = {name: most for name, most in (limited or {}).items() if most > 0 and name not in skip}
    if not skip and not capped:
        ready_ctes = "ready AS MATERIALIZED (" + _READY_SQL.format(extra=provider_filter, limit="limit") + ")"
    else:
        params["skip"] = sorted(skip | set(capped))
        parts = ["r0 AS MATERIALIZED (" + _READY_SQL.format(
            extra=f"{provider_filter} AND NOT (p.name = ANY(%(skip)s))", limit="limit") + ")"]
        for index, (name, most) in enumerate(sorted(capped.items()), start=1):
            params[f"name{index}"] = name
            params[f"limit{index}"] = min(most, max_jobs)
            parts.append(f"r{index} AS MATERIALIZED (" + _READY_SQL.format(
                extra=f"{provider_filter} AND p.name = %(name{index})s", limit=f"limit{index}") + ")")
        union = " UNION ALL ".join(f"SELECT * FROM r{index}" for index in range(len(parts)))
        parts.append(f"ready AS MATERIALIZED (SELECT u.id FROM ({union}) u "
                     "ORDER BY u.priority DESC, u.run_at, u.id LIMIT %(limit)s)")
        ready_ctes = ",\n".join(parts)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(ready_ctes=ready_ctes), params)
        rows = cursor.fetchall()
    claims = [
        Claim(job_id=row[0], attempt_id=row[1], attempt=row[2], provider=row[3],
              payload=row[4] if isinstance(row[4], dict) else json.loads(row[4]),
              lease_expires_at=row[5])
        for row in rows
    ]
    claims.sort(key=lambda claim: claim.job_id)
    return claims


def _claim_serialized(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None,
                      now: dt.datetime, skip: set[str] | None = None,
                      limited: dict[str, int] | None = None) -> list[Claim]:
    # SQLite has no row locks (select_for_update is silently dropped). Settings open every
    # transaction with BEGIN IMMEDIATE, which takes the database's write lock up front, so no
    # other claim can read the same queued rows until this one commits.
    ready = Job.objects.filter(state=JobState.QUEUED, run_at__lte=now, provider__enabled=True)
    if providers:
        ready = ready.filter(provider__name__in=list(providers))
    skip = set(skip or ())
    capped = {name: most for name, most in (limited or {}).items() if most > 0 and name not in skip}
    columns = ("id", "attempts", "payload", "provider__name", "provider__lease_seconds", "priority",
               "run_at")
    order = ("-priority", "run_at", "id")
    if skip or capped:
        rows = list(ready.exclude(provider__name__in=skip | set(capped)).order_by(*order)
                    .values_list(*columns)[:max_jobs])
        for name, most in capped.items():
            rows += list(ready.filter(provider__name=name).order_by(*order)
                         .values_list(*columns)[:min(most, max_jobs)])
        rows.sort(key=lambda row: (-row[5], row[6], row[0]))
        rows = rows[:max_jobs]
    else:
        rows = list(ready.order_by(*order).values_list(*columns)[:max_jobs])
    if not rows:
        return []
    claims = [
        Claim(job_id=job_id, attempt_id=uuid.uuid4(), attempt=attempts + 1, provider=provider_name,
              payload=payload, lease_expires_at=now + dt.timedelta(seconds=lease_seconds))
        for job_id, attempts, payload, provider_name, lease_seconds, _priority, _run_at in rows
    ]
    Job.objects.filter(pk__in=[claim.job_id for claim in claims], state=JobState.QUEUED).update(
        state=JobState.LEASED,
        attempts=F("attempts") + 1,
        leased_by=worker,
        current_attempt_id=Case(*[When(pk=c.job_id, then=Value(c.attempt_id)) for c in claims]),
        lease_expires_at=Case(*[When(pk=c.job_id, then=Value(c.lease_expires_at)) for c in claims]),
        updated_at=now,
    )
    return claims


# --- circuit breakers ----------------------------------------------------------------------------

# DESIGN.md section 7; a provider's own policy lives on its row, workers use these.
WORKER_BREAKER_POLICY = {"failure_pct": 50, "min_outcomes": 20, "window_s": 300, "cooldown_s": 120,
                         "probes": 3}
BREAKER_BUCKET_S = 10


def _provider_breaker_policy(provider: Provider) -> dict[str, int]:
    return {"failure_pct": provider.breaker_failure_pct, "min_outcomes": provider.breaker_min_outcomes,
            "window_s": provider.breaker_window_s, "cooldown_s": provider.breaker_cooldown_s,
            "probes": provider.breaker_probes}


def _breaker_policy(*, scope: str, key: str) -> dict[str, int]:
    if scope == BreakerScope.PROVIDER:
        provider = Provider.objects.filter(name=key).first()
        if provider is not None:
            return _provider_breaker_policy(provider)
    return WORKER_BREAKER_POLICY


def _breaker_move(*, scope: str, key: str, from_state: str, to_state: str, reason: str,
                  now: dt.datetime, policy: dict[str, int] | None = None, actor: Any = None,
                  forced: bool = False) -> bool:
    """Compare-and-set one breaker from `from_state` to `to_state`, with its audit row and event."""
    policy = policy or _breaker_policy(scope=scope, key=key)
    fields: dict[str, Any] = {"state": to_state, "forced": forced, "probes_succeeded": 0,
                              "updated_at": now}
    if to_state == BreakerState.OPEN:
        fields.update(opened_at=now, probes_left=0,
                      retry_at=None if forced else now + dt.timedelta(seconds=policy["cooldown_s"]))
    elif to_state == BreakerState.HALF_OPEN:
        fields.update(probes_left=policy["probes"], retry_at=None, counting_since=now)
    else:
        fields.update(opened_at=None, probes_left=0, retry_at=None, counting_since=now)
    moved = Breaker.objects.filter(scope=scope, key=key, state=from_state).update(**fields)
    if not moved:
        if from_state != BreakerState.CLOSED:
            return False
        # A breaker that never left CLOSED has no row yet.
        try:
            with transaction.atomic():
                Breaker.objects.create(scope=scope, key=key, **fields)
        except IntegrityError:
            return False
    BreakerTransition.objects.create(scope=scope, key=key, from_state=from_state, to_state=to_state,
                                     reason=reason[:200], actor=actor, at=now)
    publish("breaker.changed", scope=scope, key=key, from_state=from_state, to_state=to_state,
            reason=reason)
    return True


def _breaker_half_open(*, scope: str, key: str, now: dt.datetime) -> bool:
    """OPEN -> HALF_OPEN once the cooldown is over, reserving the probe jobs (one claim wins)."""
    policy = _breaker_policy(scope=scope, key=key)
    moved = Breaker.objects.filter(scope=scope, key=key, state=BreakerState.OPEN,
                                   retry_at__lte=now).update(
        state=BreakerState.HALF_OPEN, probes_left=policy["probes"], probes_succeeded=0, retry_at=None,
        counting_since=now, updated_at=now,
    )
    if moved:
        BreakerTransition.objects.create(scope=scope, key=key, from_state=BreakerState.OPEN,
                                         to_state=BreakerState.HALF_OPEN, reason="cooldown over", at=now)
        publish("breaker.changed", scope=scope, key=key, from_state=BreakerState.OPEN,
                to_state=BreakerState.HALF_OPEN, reason="cooldown over")
    return bool(moved)


def _breaker_probes_renew(*, breaker: Breaker, now: dt.datetime) -> None:
    """Probes handed out but never reported (their worker died) must not hold a breaker half-open
    for ever: after another cooldown with no probe left, reserve the missing probes again."""
    policy = _breaker_policy(scope=breaker.scope, key=breaker.key)
    if breaker.updated_at > now - dt.timedelta(seconds=policy["cooldown_s"]):
        return
    breaker.probes_left = max(1, policy["probes"] - breaker.probes_succeeded)
    Breaker.objects.filter(pk=breaker.pk).update(probes_left=breaker.probes_left, updated_at=now)


def _breaker_outcome(*, provider: Provider, worker: Worker, failed: bool, now: dt.datetime) -> None:
    """Count a finished attempt for the provider's and the worker's breakers, and move them."""
    bucket = now.replace(second=now.second - now.second % BREAKER_BUCKET_S, microsecond=0)
    table = BreakerOutcome._meta.db_table
    ok, bad = (0, 1) if failed else (1, 0)
    at = connection.ops.adapt_datetimefield_value(bucket)
    scopes = ((BreakerScope.PROVIDER, provider.name), (BreakerScope.WORKER, worker.pk))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (scope, key, bucket, successes, failures) "
            f"VALUES (%s, %s, %s, %s, %s), (%s, %s, %s, %s, %s) "
            f"ON CONFLICT (scope, key, bucket) DO UPDATE SET "
            f"successes = {table}.successes + excluded.successes, "
            f"failures = {table}.failures + excluded.failures",
            [scopes[0][0], scopes[0][1], at, ok, bad, scopes[1][0], scopes[1][1], at, ok, bad],
        )
    breakers = {
        (b.scope, b.key): b
        for b in Breaker.objects.filter(Q(scope=scopes[0][0], key=scopes[0][1])
                                        | Q(scope=scopes[1][0], key=scopes[1][1]))
    }
    policies = {BreakerScope.PROVIDER: _provider_breaker_policy(provider),
                BreakerScope.WORKER: WORKER_BREAKER_POLICY}
    to_check = []
    for scope, key in scopes:
        breaker = breakers.get((scope, key))
        state = breaker.state if breaker else BreakerState.CLOSED
        policy = policies[scope]
        if breaker is not None and breaker.forced:
            continue
        if state == BreakerState.HALF_OPEN:
            if failed:
                _breaker_move(scope=scope, key=key, from_state=state, to_state=BreakerState.OPEN,
                              reason="a probe job failed", now=now, policy=policy)
            elif breaker.probes_succeeded + 1 >= policy["probes"]:
                _breaker_move(scope=scope, key=key, from_state=state, to_state=BreakerState.CLOSED,
                              reason=f"{policy['probes']} probe jobs succeeded", now=now, policy=policy)
            else:
                Breaker.objects.filter(pk=breaker.pk, state=state).update(
                    probes_succeeded=F("probes_succeeded") + 1, updated_at=now)
        elif state == BreakerState.CLOSED and failed:
            since = now - dt.timedelta(seconds=policy["window_s"])
            if breaker is not None and breaker.counting_since and breaker.counting_since > since:
                since = breaker.counting_since
            to_check.append((scope, key, since, policy))
    if not to_check:
        return
    sums: dict[str, Any] = {}
    match = Q()
    for index, (scope, key, since, _policy) in enumerate(to_check):
        window = Q(scope=scope, key=key, bucket__gte=since)
        match |= window
        sums[f"ok{index}"] = Sum("successes", filter=window)
        sums[f"bad{index}"] = Sum("failures", filter=window)
    totals = BreakerOutcome.objects.filter(match).aggregate(**sums)
    for index, (scope, key, _since, policy) in enumerate(to_check):
        bad_count = totals[f"bad{index}"] or 0
        seen = (totals[f"ok{index}"] or 0) + bad_count
        if seen >= policy["min_outcomes"] and bad_count * 100 >= policy["failure_pct"] * seen:
            _breaker_move(scope=scope, key=key, from_state=BreakerState.CLOSED,
                          to_state=BreakerState.OPEN, now=now, policy=policy,
                          reason=f"{bad_count} of {seen} outcomes failed in {policy['window_s']} s")


def breaker_outcomes_purge(*, now: dt.datetime | None = None) -> int:
    """Delete outcome buckets older than the longest breaker window: no breaker counts them again.

    Reports add a bucket per provider and per worker every 10 s, so a fleet of 1,000 busy workers
    would otherwise keep about 8.6 million rows a day.
    """
    now = now or clock_now()
    longest_s = max(Provider.objects.aggregate(longest=Max("breaker_window_s"))["longest"] or 0,
                    WORKER_BREAKER_POLICY["window_s"])
    cutoff = now - dt.timedelta(seconds=longest_s + BREAKER_BUCKET_S)
    deleted, _ = BreakerOutcome.objects.filter(bucket__lt=cutoff).delete()
    return deleted


def breaker_force(*, scope: str, key: str, to_state: str, actor: Any = None, reason: str = "") -> bool:
    """Staff: force a breaker open or closed (held there), or reset it (closed, counting afresh)."""
    now = clock_now()
    with transaction.atomic():
        current = Breaker.objects.select_for_update().filter(scope=scope, key=key).first()
        from_state = current.state if current else BreakerState.CLOSED
        forced = reason != "reset"
        return _breaker_move(scope=scope, key=key, from_state=from_state, to_state=to_state,
                             reason=reason or f"forced {to_state} by staff", now=now, actor=actor,
                             forced=forced)


def breaker_reset(*, scope: str, key: str, actor: Any = None) -> bool:
    return breaker_force(scope=scope, key=key, to_state=BreakerState.CLOSED, actor=actor, reason="reset")


# --- extend / release ----------------------------------------------------------------------------


def job_lease_extend(*, worker: Worker, job_id: int, attempt_id: uuid.UUID,
                     seconds: int | None = None) -> dt.datetime:
    """Push the lease of the worker's current attempt forward (SQS ChangeMessageVisibility)."""
    now = clock_now()
    with transaction.atomic():
        job = _job_locked(job_id)
        attempt = _attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        seconds = seconds or job.provider.lease_seconds
        expires = now + dt.timedelta(seconds=seconds)
        _lease_renew(job=job, attempt=attempt, worker=worker, expires=expires, now=now)
    return expires


def _lease_renew(*, job: Job, attempt: JobAttempt, worker: Worker, expires: dt.datetime,
                 now: dt.datetime) -> None:
    # A job the reaper put back in the queue but nobody claimed yet is still this attempt's:
    # renewing takes it back rather than letting a second worker redo the work.
    Job.objects.filter(pk=job.pk, current_attempt_id=attempt.pk,
                       state__in=[JobState.LEASED, JobState.QUEUED]).update(
        state=JobState.LEASED, leased_by=worker, lease_expires_at=expires, updated_at=now
    )
    JobAttempt.objects.filter(pk=attempt.pk).update(
        lease_expires_at=expires,
        state=Case(When(state=AttemptState.LOST, then=Value(AttemptState.RUNNING)), default=F("state"),
                   output_field=CharField()),
    )


def jobs_release(*, worker: Worker, attempt_ids: Iterable[uuid.UUID] | None = None) -> int:
    """Give back this worker's leases; the jobs are ready at once and the attempt is not counted."""
    now = clock_now()
    with transaction.atomic():
        leased = Job.objects.filter(leased_by=worker, state=JobState.LEASED)
        if attempt_ids is not None:
            leased = leased.filter(current_attempt_id__in=list(attempt_ids))
        released_attempts = list(leased.select_for_update().values_list("current_attempt_id", flat=True))
        if not released_attempts:
            return 0
        count = Job.objects.filter(
            current_attempt_id__in=released_attempts, state=JobState.LEASED, leased_by=worker
        ).update(
            state=JobState.QUEUED, run_at=now, attempts=F("attempts") - 1, leased_by=None,
            lease_expires_at=None, updated_at=now,
        )
        JobAttempt.objects.filter(pk__in=released_attempts, state=AttemptState.RUNNING).update(
            state=AttemptState.RELEASED, finished_at=now
        )
    return count


# --- report --------------------------------------------------------------------------------------


class ReportOutcome:
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    ALL = (SUCCEEDED, FAILED, PARTIAL)


@dataclass(frozen=True)
class ReportResult:
    status: int
    body: dict[str, Any]


def report_request_hash(*, job_id: int, body: dict[str, Any]) -> str:
    """What makes two reports 'the same': the job and the parsed body, canonically encoded."""
    request = {"job": job_id, "body": body}
    # Sorted keys and no whitespace, so key order and spacing never make a retry look different.
    # orjson encodes a 500-lead report several times faster than the standard library; it refuses
    # only integers beyond 64 bits (possible inside a lead's `extra`), which the standard library
    # then encodes. The same body always takes the same branch, so its hash never changes.
    try:
        canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


def job_report(
    *, worker: Worker, job_id: int, attempt_id: uuid.UUID, outcome: str, leads: list[LeadInput],
    error: dict[str, Any] | None, idempotency_key: str, request_hash: str,
) -> ReportResult:
    """Take a worker's report of an attempt: ingest its leads and move the job, exactly once."""
    now = clock_now()
    with transaction.atomic():
        job = _job_locked(job_id)
        # The receipt is looked up under the job's lock, so a concurrent copy of this very report
        # that just committed is seen, and its answer is the one given.
        receipt = _receipt_find(worker=worker, key=idempotency_key, request_hash=request_hash)
        if receipt is not None:
            return receipt
        attempt = _attempt_checked(job=job, worker=worker, attempt_id=attempt_id)
        result = lead_batch_ingest(rows=leads, provider=job.provider.name, worker_id=worker.pk,
                                   job_id=job.pk, attempt_id=attempt.pk, received_at=now)
        attempt_counts = {
            "reports": F("reports") + 1,
            "leads_added": F("leads_added") + result.added,
            "leads_duplicates": F("leads_duplicates") + result.duplicates,
            "leads_invalid": F("leads_invalid") + result.invalid,
        }
        body: dict[str, Any] = {
            "added": result.added, "duplicates": result.duplicates, "invalid": result.invalid,
        }
        who = {"job_id": job.pk, "provider": job.provider.name, "worker_id": worker.pk}
        events.publish("leads.ingested", **who, added=result.added, duplicates=result.duplicates,
                       invalid=result.invalid)
        if outcome == ReportOutcome.PARTIAL:
            expires = now + dt.timedelta(seconds=job.provider.lease_seconds)
            _lease_renew(job=job, attempt=attempt, worker=worker, expires=expires, now=now)
            JobAttempt.objects.filter(pk=attempt.pk).update(**attempt_counts)
            Job.objects.filter(pk=job.pk).update(leads_added=F("leads_added") + result.added)
            body.update(job_state=JobState.LEASED, lease_expires_at=expires.isoformat())
        elif outcome == ReportOutcome.SUCCEEDED:
            JobAttempt.objects.filter(pk=attempt.pk).update(
                state=AttemptState.SUCCEEDED, finished_at=now, **attempt_counts
            )
            Job.objects.filter(pk=job.pk).update(
                state=JobState.SUCCEEDED, finished_at=now, leased_by=None, lease_expires_at=None,
                leads_added=F("leads_added") + result.added, updated_at=now,
            )
            body["job_state"] = JobState.SUCCEEDED
            # The attempt's totals over all its chunks (the row was read before this report's update).
            events.publish("job.succeeded", **who, attempt=attempt.number,
                           added=attempt.leads_added + result.added,
                           duplicates=attempt.leads_duplicates + result.duplicates,
                           invalid=attempt.leads_invalid + result.invalid)
        else:
            JobAttempt.objects.filter(pk=attempt.pk).update(
                state=AttemptState.FAILED, finished_at=now, error=error, **attempt_counts
            )
            body["job_state"] = _job_fail(job=job, error=error, now=now, added=result.added,
                                          worker_id=worker.pk, attempt=attempt.number)
        ReportReceipt.objects.create(
            worker_id=worker.pk, idempotency_key=idempotency_key, request_hash=request_hash,
            job=job, response=body, created_at=now,
        )
        counters_add(amounts={"reports": 1, "leads_added": result.added,
                              "leads_duplicates": result.duplicates, "leads_invalid": result.invalid})
        if outcome != ReportOutcome.PARTIAL:
            # Last before COMMIT: the provider's outcome bucket is one row that every report of the
            # provider updates within 10 s, so its row lock should be held for as short as possible.
            _breaker_outcome(provider=job.provider, worker=worker, failed=outcome == ReportOutcome.FAILED,
                             now=now)
    return ReportResult(status=200, body=body)


def _job_fail(*, job: Job, error: dict[str, Any] | None, now: dt.datetime, added: int, worker_id: str,
              attempt: int) -> str:
    """Retry with backoff, or move the job to the dead-letter queue with its reason."""
    retryable = True if error is None else bool(error.get("retryable", True))
    if not retryable:
        state, reason = JobState.DEAD, "non_retryable_error"
    elif job.attempts >= job.max_attempts:
        state, reason = JobState.DEAD, "max_attempts"
    else:
        state, reason = JobState.QUEUED, ""
    update: dict[str, Any] = {
        "state": state, "leased_by": None, "lease_expires_at": None, "last_error": error,
        "leads_added": F("leads_added") + added, "updated_at": now,
    }
    if state == JobState.DEAD:
        update.update(dead_reason=reason, finished_at=now)
    else:
        provider = job.provider
        delay = backoff_delay_s(attempt=job.attempts, base_s=provider.backoff_base_s,
                                cap_s=provider.backoff_cap_s)
        update["run_at"] = now + dt.timedelta(seconds=delay)
    Job.objects.filter(pk=job.pk).update(**update)
    who = {"job_id": job.pk, "attempt": attempt, "provider": job.provider.name, "worker_id": worker_id}
    if state == JobState.DEAD:
        events.publish("job.dead", **who, reason=reason)
    else:
        # The code is the worker's own string: capped, and never the free-text message.
        events.publish("job.failed", **who, error_code=str((error or {}).get("code") or "unknown")[:64],
                       retry_at=update["run_at"].isoformat())
    return state


def _receipt_find(*, worker: Worker, key: str, request_hash: str) -> ReportResult | None:
    receipt = ReportReceipt.objects.filter(worker_id=worker.pk, idempotency_key=key).first()
    if receipt is None:
        return None
    if receipt.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return ReportResult(status=200, body=receipt.response)


_MAX_BIGINT = 2**63 - 1


def _job_locked(job_id: int) -> Job:
    if not 0 < job_id <= _MAX_BIGINT:
        raise JobNotFound()
    # On PostgreSQL the row lock serializes reports and extensions of one job; on SQLite the
    # immediate transaction already serializes every writer.
    job = Job.objects.select_for_update(of=("self",)).select_related("provider").filter(pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


def _attempt_checked(*, job: Job, worker: Worker, attempt_id: uuid.UUID) -> JobAttempt:
    """The attempt rules of DESIGN.md section 4, in the order a worker can act on them."""
    attempt = JobAttempt.objects.filter(pk=attempt_id, job_id=job.pk).first()
    if attempt is None:
        raise AttemptNotFound()
    if attempt.worker_id != worker.pk:
        raise AttemptNotOwned()
    if job.current_attempt_id != attempt.pk:
        raise AttemptSuperseded()
    if job.state in FINISHED_STATES:
        raise JobFinished()
    # A failed or released attempt stays the job's latest until the next claim, but its outcome
    # is decided: a late extend or report must not re-lease or finish a job waiting out backoff.
    # A lost attempt (lease lapsed, reaper ran) may still report: the work was done.
    if attempt.state not in (AttemptState.RUNNING, AttemptState.LOST):
        raise AttemptSuperseded("This attempt already ended; wait for the next claim.")
    return attempt


# --- reaper and staff actions --------------------------------------------------------------------


def leases_reap(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Put jobs whose lease lapsed back in the queue, or in the DLQ when attempts are spent.

    The UPDATE re-checks `state='leased' AND lease_expires_at < now` itself, so a job that was
    reported between the scan and the write is never overwritten.
    """
    now = now or clock_now()
    with transaction.atomic():
        expired = list(
            Job.objects.filter(state=JobState.LEASED, lease_expires_at__lt=now)
            .order_by("lease_expires_at").values_list("pk", flat=True)[:limit]
        )
        if not expired:
            return 0
        lapsed = Q(pk__in=expired, state=JobState.LEASED, lease_expires_at__lt=now)
        # Locked so the rows read are exactly the rows the UPDATE changes (and the events say so).
        lapsed_rows = list(Job.objects.filter(lapsed).select_for_update(of=("self",)).values_list(
            "pk", "current_attempt_id", "attempts", "max_attempts", "provider__name", "leased_by_id"
        ))
        attempt_ids = [row[1] for row in lapsed_rows]
        error = {"code": "lease_expired", "message": "The worker's lease lapsed before a report.",
                 "retryable": True}
        spent = Q(attempts__gte=F("max_attempts"))
        reaped = Job.objects.filter(lapsed).update(
            state=Case(When(spent, then=Value(JobState.DEAD)), default=Value(JobState.QUEUED),
                       output_field=CharField()),
            dead_reason=Case(When(spent, then=Value("lease_expired")), default=Value(""),
                             output_field=CharField()),
            finished_at=Case(When(spent, then=Value(now)), default=Value(None),
                             output_field=DateTimeField()),
            run_at=now, leased_by=None, lease_expires_at=None, last_error=error, updated_at=now,
        )
        JobAttempt.objects.filter(pk__in=attempt_ids, state=AttemptState.RUNNING).update(
            state=AttemptState.LOST, finished_at=now, error=error
        )
        # The rows were read under the same conditions as the UPDATE, inside this transaction.
        dead, failed = [], []
        for job_id, _, attempts, max_attempts, provider, worker_id in lapsed_rows:
            who = {"job_id": job_id, "attempt": attempts, "provider": provider, "worker_id": worker_id or ""}
            if attempts >= max_attempts:
                dead.append({**who, "reason": "lease_expired"})
            else:
                failed.append({**who, "error_code": "lease_expired", "retry_at": now.isoformat()})
        events.publish_many("job.dead", dead)
        events.publish_many("job.failed", failed)
    return reaped


def jobs_cancel(*, job_ids: Iterable[int]) -> int:
    """Cancel jobs that are not finished; a leased job's late report then gets 409 job_finished.

    One UPDATE ... RETURNING names the attempts of exactly the rows it cancelled: a job claimed
    between a separate read and the write would otherwise be cancelled with its new attempt left
    `running`.
    """
    now = clock_now()
    ids = [int(job_id) for job_id in job_ids]
    if not ids:
        return 0
    table = Job._meta.db_table
    marks = ", ".join(["%s"] * len(ids))
    stamp = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, finished_at = %s, leased_by_id = NULL, "
            f"lease_expires_at = NULL, updated_at = %s "
            f"WHERE id IN ({marks}) AND state IN (%s, %s) RETURNING id, current_attempt_id",
            [JobState.CANCELLED.value, stamp, stamp, *ids, JobState.QUEUED.value, JobState.LEASED.value],
        )
        rows = cursor.fetchall()
        attempts = [attempt_id for _, attempt_id in rows if attempt_id is not None]
        JobAttempt.objects.filter(pk__in=attempts, state=AttemptState.RUNNING).update(
            state=AttemptState.CANCELLED, finished_at=now
        )
    return len(rows)


def jobs_requeue(*, job_ids: Iterable[int], reset_attempts: bool = True, priority: int | None = None) -> int:
    """Send finished (dead, cancelled, succeeded) jobs back to the queue, ready now."""
    now = clock_now()
    update: dict[str, Any] = {
        "state": JobState.QUEUED, "run_at": now, "finished_at": None, "dead_reason": "",
        "leased_by": None, "lease_expires_at": None, "updated_at": now,
    }
    if reset_attempts:
        update["attempts"] = 0
    if priority is not None:
        update["priority"] = priority
    with transaction.atomic():
        return Job.objects.filter(pk__in=list(job_ids), state__in=FINISHED_STATES).update(**update)


def dead_jobs_requeue(*, job_ids: Iterable[int], priority: int | None = None) -> int:
    """DLQ: send dead jobs back to the queue with their attempts reset (optionally a new priority)."""
    now = clock_now()
    update: dict[str, Any] = {
        "state": JobState.QUEUED, "run_at": now, "finished_at": None, "dead_reason": "", "attempts": 0,
        "leased_by": None, "lease_expires_at": None, "updated_at": now,
    }
    if priority is not None:
        update["priority"] = priority
    with transaction.atomic():
        return Job.objects.filter(pk__in=list(job_ids), state=JobState.DEAD).update(**update)


def dead_jobs_delete(*, job_ids: Iterable[int]) -> int:
    """DLQ: delete dead jobs for good (their attempts and receipts go with them); return how many jobs."""
    with transaction.atomic():
        _, per_model = Job.objects.filter(pk__in=list(job_ids), state=JobState.DEAD).delete()
    # delete() counts the cascaded attempts and receipts too; the caller asked about jobs.
    return per_model.get(Job._meta.label, 0)


PRUNABLE_STATES = (JobState.SUCCEEDED, JobState.CANCELLED)


def finished_jobs_prune(*, older_than: dt.datetime, chunk: int = 1000, most: int = 100_000) -> int:
    """Delete succeeded and cancelled jobs finished before `older_than`, with attempts and receipts.

    Like Oban's pruner: a finished job has done its work (its leads, counters and telemetry live
    elsewhere), and a queue table that only grows makes every aggregate over it slower. Dead jobs
    stay: the dead-letter queue waits for a person (`dlq purge`). One chunk per transaction and at
    most `most` jobs per run, so the first run after a long time never holds locks for long.
    """
    pruned = 0
    while pruned < most:
        ids = list(
            Job.objects.filter(state__in=PRUNABLE_STATES, finished_at__lt=older_than)
            .order_by("finished_at").values_list("id", flat=True)[:min(chunk, most - pruned)]
        )
        if not ids:
            break
        with transaction.atomic():
            _, per_model = Job.objects.filter(pk__in=ids, state__in=PRUNABLE_STATES,
                                              finished_at__lt=older_than).delete()
        pruned += per_model.get(Job._meta.label, 0)
    return pruned


def _dead_ids(provider: str | None, chunk: int = 1000) -> Iterable[list[int]]:
    dead = Job.objects.filter(state=JobState.DEAD)
    if provider:
        dead = dead.filter(provider__name=provider)
    last = 0
    while True:
        ids = list(dead.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk])
        if not ids:
            return
        yield ids
        last = ids[-1]


def dlq_requeue(*, provider: str | None = None) -> int:
    """Requeue every dead job (of one provider), a chunk per transaction."""
    return sum(dead_jobs_requeue(job_ids=ids) for ids in _dead_ids(provider))


def dlq_purge(*, provider: str | None = None) -> int:
    """Delete every dead job (of one provider), a chunk per transaction."""
    total = 0
    for ids in _dead_ids(provider):
        with transaction.atomic():
            total += Job.objects.filter(pk__in=ids, state=JobState.DEAD).count()
            Job.objects.filter(pk__in=ids, state=JobState.DEAD).delete()
    return total


def receipts_purge(*, older_than: dt.datetime) -> int:
    deleted, _ = ReportReceipt.objects.filter(created_at__lt=older_than).delete()
    return deleted
