"""Replay protection: each request nonce is taken once per worker within its window.

The same round trip reads the worker's credential generation, which says whether this process's
copy of the worker's credential is still current (workers_mgmt/credential_cache.py).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.purge import delete_or_count
from core.ratelimit import Decision, gcra_peek_from, gcra_redis_key
from workers_mgmt.credential_cache import generation_keys, new_epoch
from workers_mgmt.models import RequestNonce, Worker


@dataclass(frozen=True)
class NonceTaken:
    """`fresh`: the nonce was not seen before. `generation`: the worker's credential generation as
    of this moment, or None while the worker is being changed (or does not exist): then no copy of
    its credential may be used or kept. `budgets`: the failure budgets asked for, as read in the
    same round trip (None when they were not, or not read there); `gated`: the first of them was
    spent, so the nonce was not taken at all."""

    fresh: bool
    generation: str | None
    budgets: dict[str, Decision] | None = None
    gated: bool = False


# One script, one round trip: read the failure budgets, take the nonce unless the first budget is
# spent, and read the generation only when it was fresh (docs/PERFORMANCE.md, "The heartbeat, round
# two": the budgets were a round trip of their own). KEYS: nonce, epoch, counter, "changing" marker,
# then the budgets' limiter keys. ARGV: nonce TTL, an epoch to set when none is (Redis restarted and
# lost every counter: copies made before then must not match), then now and the first budget's
# interval and burst window (the GCRA test of core/ratelimit.py, same arithmetic in the same order).
# Returns {fresh (1, 0, or -1 when gated), generation, then each budget's TAT or ''}.
# The epoch of the worker generations (KEYS[2]), set to ARGV[2] when Redis has none: shared with the
# heartbeat lane's script (workers_mgmt/heartbeat_lane.py).
EPOCH_LUA = """
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[2], epoch)
end"""

NONCE_LUA = """
local tats = {}
for i = 5, #KEYS do
  tats[#tats + 1] = redis.call('GET', KEYS[i]) or ''
end
if #KEYS >= 5 and tats[1] ~= '' then
  local now = tonumber(ARGV[3])
  if math.max(tonumber(tats[1]), now) + tonumber(ARGV[4]) - tonumber(ARGV[5]) - now > 0 then
    return {-1, '', unpack(tats)}
  end
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {0, '', unpack(tats)}
end
""" + EPOCH_LUA + """
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {1, '', unpack(tats)}
end
return {1, epoch .. ':' .. (redis.call('GET', KEYS[3]) or '0'), unpack(tats)}
"""


@lru_cache(maxsize=4)
def _redis_script(url: str) -> Any:
    from core.redis import redis_client

    return redis_client().register_script(NONCE_LUA)


def nonce_record(*, worker_id: str, nonce: str, seen_at: dt.datetime,
                 budgets: dict[str, tuple[float, int]] | None = None) -> NonceTaken:
    """Remember a request nonce (not fresh: this worker already used it, a replay), and read the
    worker's credential generation in the same round trip.

    With Redis, `budgets` (limiter key -> (per minute, burst), as `gcra_peek_each` takes them) are
    read in that round trip too, and a spent first budget leaves the nonce untaken (`gated`). The
    database store ignores them: its caller reads them first (`budgets_read_with_nonce`).
    """
    if settings.REDIS_URL:
        return _redis_record(worker_id, nonce, budgets or {})
    # One statement on both databases: the unique constraint decides, RETURNING says who won and
    # carries the generation (one primary-key read of the worker inside the same statement).
    table = RequestNonce._meta.db_table
    workers = Worker._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (worker_id, nonce, seen_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (worker_id, nonce) DO NOTHING "
            f"RETURNING (SELECT credential_generation FROM {workers} WHERE id = %s)",
            [worker_id, nonce, seen_at, worker_id],
        )
        row = cursor.fetchone()
    if row is None:
        return NonceTaken(False, None)
    return NonceTaken(True, None if row[0] is None else f"db:{row[0]}")


def budgets_read_with_nonce() -> bool:
    """Whether `nonce_record` reads the failure budgets in its own round trip (the Redis store)."""
    return bool(settings.REDIS_URL)


def _redis_record(worker_id: str, nonce: str, budgets: dict[str, tuple[float, int]]) -> NonceTaken:
    call = nonce_script_call(worker_id=worker_id, nonce=nonce, budgets=budgets)
    if isinstance(call, NonceTaken):
        return call
    return call.result(_redis_script(settings.REDIS_URL)(keys=call.keys, args=call.args))


@dataclass(frozen=True)
class NonceScriptCall:
    """One run of the nonce script: its keys and arguments, and how to read what it returns (the
    heartbeat's async lane runs the same script through its own client, heartbeat_lane.py)."""

    keys: list[str]
    args: list[Any]
    budgets: dict[str, tuple[float, int]]
    now: float

    def result(self, returned: list[Any]) -> NonceTaken:
        fresh, generation, *tats = returned
        names = list(self.budgets)
        read = {name: float(tat) for name, tat in zip(names, tats, strict=True) if tat}
        decisions = gcra_peek_from(limits=self.budgets, tats=read, now=self.now) if names else None
        return NonceTaken(fresh == 1, generation.decode() if generation else None, decisions,
                          gated=fresh == -1)


def nonce_script_call(*, worker_id: str, nonce: str, budgets: dict[str, tuple[float, int]]
                      ) -> NonceScriptCall | NonceTaken:
    """The Redis nonce script's call for this nonce, or its answer when no call is needed (a zero
    failure budget is always spent: refused before the nonce, as the limiter would)."""
    key = nonce_key(worker_id=worker_id, nonce=nonce)
    epoch, counter, changing = generation_keys(worker_id)
    names = list(budgets)
    now = time.time()
    gate: list[float] = []
    if names and budgets[names[0]][0] > 0:
        interval = 60.0 / budgets[names[0]][0]
        gate = [now, interval, interval * max(1, budgets[names[0]][1])]
    elif names:
        return NonceTaken(False, None, gcra_peek_from(limits=budgets, tats={}, now=now), gated=True)
    return NonceScriptCall(
        keys=[key, epoch, counter, changing, *(gcra_redis_key(name) for name in names)],
        args=[settings.LEADOPS_NONCE_TTL_S, new_epoch(), *(repr(value) for value in gate)],
        budgets=budgets, now=now)


def nonce_key(*, worker_id: str, nonce: str) -> str:
    """The Redis key that holds one taken nonce."""
    return f"{settings.LEADOPS_REDIS_PREFIX}:nonce:{worker_id}:{nonce}"


def nonce_forget(*, worker_id: str, nonce: str) -> None:
    """Give back a nonce taken by a request that then failed to authenticate.

    A request is judged by its nonce before its signature (the same round trip reads the credential
    generation), so without this a forged copy of a request, sent first, would spend the real
    request's nonce: nothing unauthenticated may change how an authentic request is answered.
    """
    if settings.REDIS_URL:
        from core.redis import redis_client

        redis_client().delete(nonce_key(worker_id=worker_id, nonce=nonce))
        return
    RequestNonce.objects.filter(worker_id=worker_id, nonce=nonce).delete()


def nonce_purge(*, older_than: dt.datetime | None = None, dry_run: bool = False) -> int:
    """Forget nonces past their window; a replay that old fails the timestamp check anyway."""
    cutoff = older_than or timezone.now() - dt.timedelta(seconds=settings.LEADOPS_NONCE_TTL_S)
    return delete_or_count(queryset=RequestNonce.objects.filter(seen_at__lt=cutoff), dry_run=dry_run)
