"""One GCRA limiter for the whole project (worker request rates now, provider quotas later).

GCRA keeps one number per key, the theoretical arrival time (TAT). A request at `now` is allowed
when `max(tat, now) + interval - burst_window <= now`; then `tat` moves to `max(tat, now) + interval`.
The check and the move happen in one atomic statement, so the limit holds across any number of
server processes: an UPSERT on the database, or a Lua script on Redis when REDIS_URL is set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection

from core.models import RateLimitState
from core.purge import delete_or_count
from core.redis import redis_client


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


# Public for the heartbeat's async lane, which runs this script through its own async client
# (workers_mgmt/heartbeat_lane.py): the same test, the same arithmetic.
GCRA_LUA = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst_window = tonumber(ARGV[3])
local base = math.max(tat, now)
local new_tat = base + interval
if new_tat - burst_window <= now then
  redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  return {1, '0'}
end
return {0, tostring(new_tat - burst_window - now)}
"""


@lru_cache(maxsize=4)
def _redis_script(url: str) -> Any:
    # Cached per URL so a settings change in tests gets its own script object.
    return redis_client().register_script(GCRA_LUA)


def gcra_acquire(*, key: str, per_minute: float, burst: int = 1, now: float | None = None) -> Decision:
    """Take one token from `key`, allowing `per_minute` on average and `burst` at once."""
    if per_minute <= 0:
        return Decision(False, 60.0)
    interval, burst_window = gcra_window(per_minute=per_minute, burst=burst)
    now = time.time() if now is None else now
    if settings.REDIS_URL:
        redis_key = gcra_redis_key(key)
        script = _redis_script(settings.REDIS_URL)
        allowed, wait = script(keys=[redis_key], args=[now, interval, burst_window])
        return Decision(bool(allowed), float(wait))
    return _db_acquire(key, now, interval, burst_window)


def gcra_window(*, per_minute: float, burst: int) -> tuple[float, float]:
    """(interval, burst window) in seconds of a limit of `per_minute` (> 0) with `burst` at once."""
    interval = 60.0 / per_minute
    return interval, interval * max(1, burst)


def _db_acquire(key: str, now: float, interval: float, burst_window: float) -> Decision:
    table = RateLimitState._meta.db_table
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    # The WHERE of the DO UPDATE is the admission test: when it fails, nothing is written and
    # RETURNING gives no row. A brand-new key is always admitted by the INSERT.
    sql = (
        f"INSERT INTO {table} (key, tat) VALUES (%s, %s) "
        f"ON CONFLICT (key) DO UPDATE SET tat = {greatest}({table}.tat, %s) + %s "
        f"WHERE {greatest}({table}.tat, %s) + %s - %s <= %s RETURNING tat"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [key, now + interval, now, interval, now, interval, burst_window, now])
        row = cursor.fetchone()
        if row is not None:
            return Decision(True, 0.0)
        cursor.execute(f"SELECT tat FROM {table} WHERE key = %s", [key])
        tat_row = cursor.fetchone()
    tat = tat_row[0] if tat_row else now
    return Decision(False, max(0.0, max(tat, now) + interval - burst_window - now))



def ratelimit_states_purge(*, now: float | None = None, dry_run: bool = False) -> int:
    """Delete limiter rows whose TAT has passed: such a key has its whole burst again, as if absent.

    Every key ever limited (per worker, per source IP of a failed authentication) leaves a row in
    the database store; without this the table only grows. Redis keys expire by themselves.
    """
    now = time.time() if now is None else now
    return delete_or_count(queryset=RateLimitState.objects.filter(tat__lt=now), dry_run=dry_run)


def gcra_peek(*, limits: dict[str, tuple[float, int]], now: float | None = None) -> Decision:
    """Whether one more token could be taken from every key, without taking it (one round trip).

    `limits` maps each key to its (per_minute, burst). For limits on events counted after the
    fact, such as failed authentications: the caller asks before doing the work, and calls
    gcra_acquire only when the event happened.
    """
    decisions = gcra_peek_each(limits=limits, now=now).values()
    wait = max((decision.retry_after_s for decision in decisions if not decision.allowed), default=0.0)
    return Decision(all(decision.allowed for decision in decisions), wait)


def gcra_peek_each(*, limits: dict[str, tuple[float, int]], now: float | None = None) -> dict[str, Decision]:
    """gcra_peek per key, still one round trip: for callers that enforce the keys at different steps."""
    now = time.time() if now is None else now
    keys = list(limits)
    if settings.REDIS_URL:
        values = redis_client().mget([gcra_redis_key(key) for key in keys])
        tats = {key: float(value) for key, value in zip(keys, values, strict=True) if value is not None}
    else:
        tats = dict(RateLimitState.objects.filter(key__in=keys).values_list("key", "tat"))
    return gcra_peek_from(limits=limits, tats=tats, now=now)


def gcra_redis_key(key: str) -> str:
    """The Redis key of a limiter key: for a script that reads limiter state along with its own work."""
    return f"{settings.LEADOPS_REDIS_PREFIX}:gcra:{key}"


def gcra_peek_from(*, limits: dict[str, tuple[float, int]], tats: dict[str, float], now: float
                   ) -> dict[str, Decision]:
    """gcra_peek_each on TATs the caller has read itself (a key absent from `tats` has its whole burst)."""
    decisions = {}
    for key, (per_minute, burst) in limits.items():
        if per_minute <= 0:
            decisions[key] = Decision(False, 60.0)
            continue
        interval = 60.0 / per_minute
        tat = tats.get(key)
        wait = 0.0 if tat is None else max(tat, now) + interval - interval * max(1, burst) - now
        decisions[key] = Decision(wait <= 0, max(0.0, wait))
    return decisions


# --- taking several tokens at once, on state the caller holds locked ------------------------------
# Provider quotas keep their TAT in a row the claim locks for its transaction; these pure functions
# are the same GCRA arithmetic as above, for n tokens at a time.


def gcra_tokens_available(*, tat: float, now: float, per_minute: float, burst: int, wanted: int) -> int:
    """How many of `wanted` tokens may be taken at `now` (0 when throttled)."""
    if wanted <= 0 or per_minute <= 0:
        return 0
    interval = 60.0 / per_minute
    room = now + interval * max(1, burst) - max(tat, now)
    return max(0, min(wanted, int(room // interval)))


def gcra_tat_after(*, tat: float, now: float, per_minute: float, taken: int) -> float:
    """The TAT once `taken` tokens were taken at `now`."""
    return max(tat, now) + taken * (60.0 / per_minute)


def gcra_wait_s(*, tat: float, now: float, per_minute: float, burst: int) -> float:
    """Seconds until one more token may be taken."""
    interval = 60.0 / per_minute
    return max(0.0, max(tat, now) + interval - interval * max(1, burst) - now)
