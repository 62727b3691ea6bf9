"""The claim: one statement hands out ready jobs (docs/SYSTEM_OVERVIEW.md, "The claim")."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Value, When
from django.utils.timezone import now as clock_now

from core import events
from core.counters import metric_totals_add
from core.db import pipelined, rows_insert
from queueing.models import (
    AttemptState,
    Job,
    JobAttempt,
    JobState,
)
from queueing.services.guards import claim_guard, claim_guard_settle
from queueing.services.leases import leases_reap
from workers_mgmt.models import Worker


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


class _PullReaper:
    """Runs the lease reaper from the pull path at most once per `LEADOPS_REAP_ON_PULL_S` per process.

    The q cluster reaps once a minute; a worker that died holding a lease would leave its jobs
    stuck for up to lease + a minute. While workers pull, the pull itself reaps first (a bounded
    UPDATE that re-checks every lease, docs/SYSTEM_OVERVIEW.md "The lease reaper"), so the job is
    claimable again within lease + this period. The period is measured on the portal's clock, so
    tests that move the clock move it too.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: dt.datetime | None = None

    def due(self, now: dt.datetime) -> bool:
        period = settings.LEADOPS_REAP_ON_PULL_S
        if period <= 0:
            return False
        with self._lock:
            if self.last is not None and now < self.last + dt.timedelta(seconds=period):
                if now < self.last:
                    self.last = now  # the clock went back: count the period from here
                return False
            self.last = now
            return True


pull_reaper = _PullReaper()


def jobs_pull(*, worker: Worker, max_jobs: int, providers: Sequence[str] | None = None) -> PullResult:
    """The claim with its guards: breakers (provider and worker) and provider quotas.

    On PostgreSQL the claim statement first asks whether any breaker that concerns this pull is not
    closed or any provider has a quota; usually none does, and that one statement is the whole
    claim, attempts included. Otherwise (and on SQLite) one read finds those guards, and only then
    do the guard rows get locked (half-open probes, quota state). Quota tokens and probes are taken
    for the jobs actually handed out, in the claim's transaction.
    """
    if max_jobs < 1:
        return PullResult(claims=[])
    now = clock_now()
    if pull_reaper.due(now):
        leases_reap(now=now, limit=500)
    # Pipelined: the attempts, counter and outbox inserts go out together (core/db/pipeline.py).
    with transaction.atomic(), pipelined():
        claims: list[Claim] | None = None
        guard = None
        if connection.vendor == "postgresql" and unguarded_claims.worth_trying():
            # The common case, no breaker open and no provider quota: the guard's question, the claim
            # and its attempts in one statement; None when a guard exists after all.
            claims = _claim_postgresql(worker=worker, max_jobs=max_jobs, providers=providers, now=now,
                                       gated=True)
            unguarded_claims.saw(guarded=claims is None)
        if claims is None:
            guard = claim_guard(worker=worker, max_jobs=max_jobs, now=now)
            if guard.max_jobs < 1:
                return PullResult(claims=[], throttled_for_s=guard.wait_s,
                                  worker_blocked=guard.worker_blocked)
            if connection.vendor == "postgresql":
                claims = _claim_postgresql(worker=worker, max_jobs=guard.max_jobs, providers=providers,
                                           now=now, skip=guard.skip, limited=guard.limited)
            else:
                claims = _claim_serialized(worker=worker, max_jobs=guard.max_jobs, providers=providers,
                                           now=now, skip=guard.skip, limited=guard.limited)
                if claims:
                    rows_insert(model=JobAttempt, rows=[
                        JobAttempt(id=claim.attempt_id, job_id=claim.job_id, number=claim.attempt,
                                   worker=worker, claimed_at=now, lease_expires_at=claim.lease_expires_at)
                        for claim in claims
                    ])
        if claims:
            metric_totals_add(amounts={"claims": len(claims)})
            # One batch for the whole claim: one stored INSERT and one group message on commit.
            events.publish_many("job.claimed", [
                {"job_id": c.job_id, "attempt_id": str(c.attempt_id), "attempt": c.attempt,
                 "provider": c.provider, "worker_id": worker.pk}
                for c in claims
            ])
            if guard is not None:
                claim_guard_settle(guard=guard, claims=claims, now=now)
    return PullResult(claims=claims or [], throttled_for_s=None if claims or guard is None else guard.wait_s)


class _UnguardedClaims:
    """Whether this process tries the one-statement claim first (docs/SYSTEM_OVERVIEW.md, "Guards on
    the claim").

    Both ways give the same answer; this only picks the cheaper one. Where a breaker is open or a
    provider has a quota, the first try finds a guard and the claim is made again the guarded way,
    one statement more: after that, this process goes the guarded way at once for
    `RETRY_AFTER_S` before it tries the short way again.
    """

    RETRY_AFTER_S = 10.0

    def __init__(self) -> None:
        self.guarded_until = 0.0

    def worth_trying(self) -> bool:
        return time.monotonic() >= self.guarded_until

    def saw(self, *, guarded: bool) -> None:
        self.guarded_until = time.monotonic() + self.RETRY_AFTER_S if guarded else 0.0


unguarded_claims = _UnguardedClaims()


# The lease, and the attempt each leased job starts: the attempts' INSERT reads the UPDATE's rows, so
# both are one statement. {gate} is empty, or the guards' question (_GATE_SQL).
_CLAIM_SQL = """
WITH {gate}{ready_ctes},
claimed AS (
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
),
started AS (
INSERT INTO queueing_jobattempt (id, job_id, number, worker_id, state, claimed_at, lease_expires_at,
                                 finished_at, error, reports, leads_added, leads_duplicates, leads_invalid,
                                 log_tail)
SELECT c.current_attempt_id, c.id, c.attempts, %(worker_id)s, %(running)s, %(now)s, c.lease_expires_at,
       NULL, NULL, 0, 0, 0, 0, ''
  FROM claimed c
)
SELECT {guarded} c.id, c.current_attempt_id, c.attempts, c.name, c.payload, c.lease_expires_at
  FROM {source}
"""

# What claim_guard reads, as one yes or no: is any breaker that concerns this worker not closed, or
# has any enabled provider a quota? When yes, the claim leases nothing and is made the guarded way.
_GATE_SQL = """gate AS MATERIALIZED (
SELECT EXISTS (SELECT 1 FROM queueing_breaker b
                WHERE b.state <> 'closed'
                  AND (b.scope = 'provider' OR (b.scope = 'worker' AND b.key = %(worker_id)s)))
    OR EXISTS (SELECT 1 FROM queueing_provider p
                WHERE p.enabled AND (p.quota_per_min IS NOT NULL OR p.daily_cap IS NOT NULL)) AS guarded
),
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
                      limited: dict[str, int] | None = None, gated: bool = False) -> list[Claim] | None:
    # One statement: materialized CTEs pick and lock the head of the queue (skipping rows other
    # claimers hold), the UPDATE leases exactly those rows and the INSERT starts their attempts.
    # Eligibility is filtered inside the CTEs so an ineligible row never takes a LIMIT slot. A
    # provider held to fewer jobs (its quota, its half-open probes) gets its own CTE with its own
    # LIMIT; the best `max_jobs` of all CTEs are leased (rows locked but not picked stay queued).
    # `gated`: the statement first asks whether any guard applies, and leases nothing (None) if so.
    params: dict[str, Any] = {"now": now, "limit": max_jobs, "worker_id": worker.pk,
                              "running": AttemptState.RUNNING.value}
    provider_filter = ""
    if providers:
        provider_filter = "AND p.name = ANY(%(providers)s)"
        params["providers"] = list(providers)
    skip = set(skip or ())
    capped = {name: most for name, most in (limited or {}).items() if most > 0 and name not in skip}
    if gated:
        ready_ctes = "ready AS MATERIALIZED (" + _READY_SQL.format(
            extra=f"{provider_filter} AND NOT (SELECT guarded FROM gate)", limit="limit") + ")"
    elif not skip and not capped:
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
    sql = _CLAIM_SQL.format(
        gate=_GATE_SQL if gated else "", ready_ctes=ready_ctes,
        # Gated, the one row of the gate comes back even when nothing was leased.
        guarded="g.guarded," if gated else "",
        source="gate g LEFT JOIN claimed c ON true" if gated else "claimed c")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if gated:
        if rows[0][0]:
            return None
        rows = [row[1:] for row in rows if row[1] is not None]
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
