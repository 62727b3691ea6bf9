"""Circuit breakers per provider and per worker, shared through the database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Max, Q, Sum
from django.utils.timezone import now as clock_now

from core.audit import Actor, staff_action_record
from core.counters import connection_shard
from core.db import FixedRead, rows_together
from core.events import publish
from queueing.models import (
    Breaker,
    BreakerOutcome,
    BreakerScope,
    BreakerState,
    BreakerTransition,
    Provider,
)
from workers_mgmt.models import Worker

# docs/SYSTEM_OVERVIEW.md, "Semantics"; a provider's own policy lives on its row, workers use these.
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
                  forced: bool = False, only_when_due: bool = False) -> bool:
    """Compare-and-set one breaker from `from_state` to `to_state`, with its audit row and event.

    `only_when_due`: move only a breaker whose cooldown is over (`retry_at <= now`).
    """
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
    current = Breaker.objects.filter(scope=scope, key=key, state=from_state)
    if only_when_due:
        current = current.filter(retry_at__lte=now)
    moved = current.update(**fields)
    if not moved:
        if from_state != BreakerState.CLOSED or only_when_due:
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


def breaker_half_open(*, scope: str, key: str, now: dt.datetime) -> bool:
    """OPEN -> HALF_OPEN once the cooldown is over, reserving the probe jobs (one claim wins)."""
    return _breaker_move(scope=scope, key=key, from_state=BreakerState.OPEN, to_state=BreakerState.HALF_OPEN,
                         reason="cooldown over", now=now, only_when_due=True)


def breaker_probes_renew(*, breaker: Breaker, now: dt.datetime) -> None:
    """Probes handed out but never reported (their worker died) must not hold a breaker half-open
    for ever: after another cooldown with no probe left, reserve the missing probes again."""
    policy = _breaker_policy(scope=breaker.scope, key=breaker.key)
    if breaker.updated_at > now - dt.timedelta(seconds=policy["cooldown_s"]):
        return
    breaker.probes_left = max(1, policy["probes"] - breaker.probes_succeeded)
    Breaker.objects.filter(pk=breaker.pk).update(probes_left=breaker.probes_left, updated_at=now)


OUTCOME_SHARDS = 16


# The provider's and the worker's breaker rows (a missing row is a closed breaker).
_BREAKERS_OF = "(scope = %s AND key = %s) OR (scope = %s AND key = %s)"


def breaker_outcome_record(*, provider: Provider, worker: Worker, failed: bool, now: dt.datetime,
                     counts: tuple[int, int] | None = None) -> None:
    """Count finished attempts for the provider's and the worker's breakers, and move them.

    One attempt (`failed`), or several of one provider at once (`counts` = successes, failures:
    the exchange), which is the same as counting them one after another in the same bucket.
    """
    bucket = now.replace(second=now.second - now.second % BREAKER_BUCKET_S, microsecond=0)
    table = BreakerOutcome._meta.db_table
    ok, bad = counts if counts is not None else ((0, 1) if failed else (1, 0))
    failed = bad > 0
    at = connection.ops.adapt_datetimefield_value(bucket)
    scopes = ((BreakerScope.PROVIDER, provider.name), (BreakerScope.WORKER, worker.pk))
    # Every report of a provider adds to its bucket: a row per connection shard keeps reports from
    # queueing behind each other's commits (docs/PERFORMANCE.md, "What the fleet waited on"). A
    # worker's own row is its own.
    shard = connection_shard(OUTCOME_SHARDS)
    count = (f"INSERT INTO {table} (scope, key, bucket, shard, successes, failures) "
             f"VALUES (%s, %s, %s, %s, %s, %s), (%s, %s, %s, 0, %s, %s) "
             f"ON CONFLICT (scope, key, bucket, shard) DO UPDATE SET "
             f"successes = {table}.successes + excluded.successes, "
             f"failures = {table}.failures + excluded.failures")
    count_params = [scopes[0][0], scopes[0][1], at, shard, ok, bad, scopes[1][0], scopes[1][1], at, ok, bad]
    read_params = [scopes[0][0], scopes[0][1], scopes[1][0], scopes[1][1]]
    if connection.vendor == "postgresql":
        # The outcomes counted and both breakers read in one statement, one round trip.
        read = FixedRead(Breaker, _BREAKERS_OF, [*count_params, *read_params],
                         head=f"WITH counted AS ({count})")
    else:
        with connection.cursor() as cursor:
            cursor.execute(count, count_params)
        read = FixedRead(Breaker, _BREAKERS_OF, read_params)
    [found] = rows_together(read)
    breakers = {(b.scope, b.key): b for b in found}
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
            elif breaker is None or breaker.probes_succeeded + ok >= policy["probes"]:
                _breaker_move(scope=scope, key=key, from_state=state, to_state=BreakerState.CLOSED,
                              reason=f"{policy['probes']} probe jobs succeeded", now=now, policy=policy)
            else:
                Breaker.objects.filter(pk=breaker.pk, state=state).update(
                    probes_succeeded=F("probes_succeeded") + ok, updated_at=now)
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


class BreakerAction(models.TextChoices):
    """What staff do to a breaker: hold it open, hold it closed, or reset it (closed, counting afresh)."""

    FORCE_OPEN = "force_open", "Force open"
    FORCE_CLOSED = "force_closed", "Force closed"
    RESET = "reset", "Reset"


_ACTION_TARGET = {
    BreakerAction.FORCE_OPEN: BreakerState.OPEN,
    BreakerAction.FORCE_CLOSED: BreakerState.CLOSED,
    BreakerAction.RESET: BreakerState.CLOSED,
}


def breaker_force(*, scope: str, key: str, action: BreakerAction, actor: Any = None,
                  reason: str = "") -> bool:
    """Staff: force a breaker open or closed (held there), or reset it (closed, counting afresh)."""
    action = BreakerAction(action)
    to_state = _ACTION_TARGET[action]
    now = clock_now()
    with transaction.atomic():
        current = Breaker.objects.select_for_update().filter(scope=scope, key=key).first()
        from_state = current.state if current else BreakerState.CLOSED
        default_reason = "reset" if action == BreakerAction.RESET else f"forced {to_state} by staff"
        moved = _breaker_move(scope=scope, key=key, from_state=from_state, to_state=to_state,
                              reason=reason or default_reason, now=now, actor=actor,
                              forced=action != BreakerAction.RESET)
        if moved and actor is not None:
            # The transition keeps the breaker's own detail; the staff change is listed with the rest.
            staff_action_record(actor=Actor.from_user(actor), action=f"breaker.{action.value}",
                                object_type="queueing.breaker", object_ids=[f"{scope}:{key}"],
                                changes={"state": [from_state, to_state]})
        return moved


def breaker_reset(*, scope: str, key: str, actor: Any = None) -> bool:
    return breaker_force(scope=scope, key=key, action=BreakerAction.RESET, actor=actor)
