"""The heartbeat on the event loop: the common accepted `POST /heartbeat`, without Django's request
path (docs/PERFORMANCE.md, "The heartbeat on the loop"; docs/DEPLOY.md, "The heartbeat lane").

A heartbeat is the request a fleet sends most, and its work is two Redis scripts and one UPDATE.
Through Django it also pays a hand-off to a request thread, the request object, the middleware chain
and a pooled connection's check. Under an ASGI server with PostgreSQL and Redis, `heartbeat_answer`
does the same work on the loop, with async clients of its own, and answers what the view answers,
in two round trips instead of three.

It takes only the case it can answer alike in every respect, and hands every other request to the
Django view (`None`) before it has changed anything, or after undoing what it changed:

1. Pure checks, no side effect: the signing headers (`auth.signed_headers_valid`), the body's hash,
   a JSON body that `protocol.heartbeat_parse` accepts, and this process's copy of the key
   (`credential_peek`): a current or in-grace key of this worker, enabled, whose signature matches,
   with no key use to record (`credential_touch` writes once a minute), no push key to deliver, a
   worker that is not coming back online (that event is stored) and the configuration in memory.
2. One Redis script (`TAKE_LUA`) takes the nonce and the worker's rate-limit token together. It
   refuses as the view's steps would: the IP's failure budget spent, or a replay, and nothing is
   taken; the worker's credential generation not the copy's (a revoke in another process: the copy
   may be stale), or the rate limit spent, and the nonce is given back. The view then answers,
   reading the key from the database as it always does.
3. The UPDATE (`worker_heartbeat_statement`, the view's own statement). On a database error the
   nonce is given back and the view answers (its 503); the rate-limit token stays spent.

The signature is checked against the copy before the nonce is taken, and the copy is used only when
the nonce script confirms it current: the order of `workers_mgmt/auth.py` decides the same things.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import weakref
from typing import Any

import orjson
from django.conf import settings
from django.db import connections
from django.utils.timezone import now as clock_now

from core.ratelimit import gcra_redis_key, gcra_window
from workers_mgmt import protocol
from workers_mgmt.api import update_target_read
from workers_mgmt.auth import (
    auth_failure_budgets,
    compute_signature,
    key_usable,
    signed_headers_valid,
    string_to_sign,
)
from workers_mgmt.credential_cache import credential_peek, generation_keys, new_epoch
from workers_mgmt.models import CredentialState
from workers_mgmt.nonces import EPOCH_LUA, nonce_key
from workers_mgmt.services import (
    worker_config_peek,
    worker_heartbeat_statement,
    worker_heartbeat_stored,
    worker_online_due,
)

logger = logging.getLogger("leadops.auth")

PATH = "/api/v1/heartbeat"
_TOUCH_EVERY_S = 60  # credential_touch's interval: a heartbeat due to record a key's use goes to the view


# Steps 2 and 3 in one round trip. The signature was checked against the copy first, so the worker's
# rate-limit token may be taken here, but only when the generation read is the copy's: the copy is
# then current, the signature is the key's, and the token is the worker's to spend. Whatever does not
# go through gives the nonce back before returning. The IP gate is the nonce script's
# (workers_mgmt/nonces.py), the rate limit the GCRA of core/ratelimit.py, same arithmetic in the same
# order. KEYS: nonce, epoch, counter, "changing" marker, the worker's rate key, the IP failure budget.
# ARGV: nonce TTL, an epoch for a Redis that lost its own, the copy's generation, now, the rate's
# interval and burst window, the IP budget's interval and burst window.
# Returns {outcome, generation}: 1 taken; -1 IP budget spent, 0 a replay (nothing taken); 2 the
# generation moved or is changing, 3 rate limited (nonce given back).
TAKE_LUA = """
local now = tonumber(ARGV[4])
local ip_tat = redis.call('GET', KEYS[6])
if ip_tat and math.max(tonumber(ip_tat), now) + tonumber(ARGV[7]) - tonumber(ARGV[8]) - now > 0 then
  return {-1, ''}
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {0, ''}
end
""" + EPOCH_LUA + """
local generation = epoch .. ':' .. (redis.call('GET', KEYS[3]) or '0')
if redis.call('EXISTS', KEYS[4]) == 1 or generation ~= ARGV[3] then
  redis.call('DEL', KEYS[1])
  return {2, generation}
end
local interval = tonumber(ARGV[5])
local new_tat = math.max(tonumber(redis.call('GET', KEYS[5]) or '0'), now) + interval
if new_tat - tonumber(ARGV[6]) <= now then
  redis.call('SET', KEYS[5], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
  return {1, generation}
end
redis.call('DEL', KEYS[1])
return {3, generation}
"""


def lane_enabled() -> bool:
    """Whether this deployment's heartbeats may take the lane: PostgreSQL and Redis (the stores it
    has async clients for), and the setting on."""
    return bool(settings.LEADOPS_HEARTBEAT_LANE and settings.REDIS_URL and settings.IS_POSTGRES)


async def heartbeat_answer(*, headers: dict[bytes, bytes], body: bytes, raw_path: str,
                           ip: str | None) -> dict[str, Any] | None:
    """The heartbeat's answer (the view's fields), or None: the Django view must answer this one."""
    checked = _checked(headers, body, raw_path, ip)
    if checked is None:
        return None
    worker_id, nonce, peek, data, config, at = checked
    clients = _clients()
    budgets = auth_failure_budgets(ip=ip, worker_id=worker_id)
    per_minute = peek.credential.worker.rate_limit_per_min
    gate = budgets[next(iter(budgets))]
    if per_minute <= 0 or gate[0] <= 0:
        return None  # always refused: the view says how
    rate_interval, rate_window = gcra_window(per_minute=per_minute, burst=max(1, per_minute // 10))
    gate_interval, gate_window = gcra_window(per_minute=gate[0], burst=gate[1])
    now = time.time()
    try:
        outcome, _generation = await clients.take(
            keys=[nonce_key(worker_id=worker_id, nonce=nonce), *generation_keys(worker_id),
                  gcra_redis_key(f"worker:{worker_id}"), gcra_redis_key(next(iter(budgets)))],
            args=[settings.LEADOPS_NONCE_TTL_S, new_epoch(), peek.generation, now, rate_interval,
                  rate_window, repr(gate_interval), repr(gate_window)])
    except Exception:
        # The script may have run before the connection failed: its nonce goes back if Redis is there.
        with contextlib.suppress(Exception):
            await clients.forget(nonce_key(worker_id=worker_id, nonce=nonce))
        raise
    if outcome != 1:
        return None  # nothing taken, or given back in the same script: the view answers
    read = update_target_read()
    sql, params = worker_heartbeat_statement(
        worker_id=worker_id, at=at, version=data["version"], status=data["status"],
        running_jobs=data["running_jobs"], metrics=data.get("metrics"), ip=ip,
        self_test=data.get("self_test"),
        read=None if read is None else (read.subquery("postgresql"), [read.now(), worker_id]), db=clients.db)
    try:
        value = await clients.update(sql, params)
    except Exception as exc:
        # The error's class only: a driver's message may quote the statement's values (the IP).
        logger.warning("heartbeat lane: the worker's UPDATE failed (%s); the view answers",
                       type(exc).__name__)
        await clients.forget(nonce_key(worker_id=worker_id, nonce=nonce))
        return None
    worker_heartbeat_stored(worker_id=worker_id, at=at, version=data["version"], status=data["status"],
                            running_jobs=data["running_jobs"], deliver=True)
    return {"server_time": clock_now().isoformat(), "poll_interval_s": config.poll_interval_s,
            "config_version": config.version,
            "update_target": None if read is None else read.decode(value)}


def _checked(headers: dict[bytes, bytes], body: bytes, raw_path: str, ip: str | None) -> Any:
    """Step 1: everything decided without a side effect, or None."""
    def header(name: bytes) -> str:
        return headers.get(name, b"").decode("latin-1")

    worker_id, key_id = header(b"x-leadops-worker"), header(b"x-leadops-key-id")
    timestamp, nonce = header(b"x-leadops-timestamp"), header(b"x-leadops-nonce")
    content_sha256 = header(b"x-leadops-content-sha256")
    signature = signed_headers_valid(worker_id=worker_id, key_id=key_id, timestamp=timestamp, nonce=nonce,
                                     content_sha256=content_sha256, authorization=header(b"authorization"))
    if signature is None or not body:
        return None
    if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), content_sha256):
        return None
    peek = credential_peek(key_id)
    if peek is None:
        return None
    credential, worker = peek.credential, peek.credential.worker
    at = clock_now()
    if (credential.worker_id != worker_id or not worker.enabled or not key_usable(credential, at)
            or credential.state not in (CredentialState.CURRENT, CredentialState.PREVIOUS)
            or (credential.state == CredentialState.CURRENT and not peek.push_absent)
            or credential.last_used_at is None
            or (at - credential.last_used_at).total_seconds() >= _TOUCH_EVERY_S
            or worker_online_due(previous=worker.last_seen_at, at=at)):
        return None
    canonical = string_to_sign(method="POST", path=raw_path, query="", worker_id=worker_id, key_id=key_id,
                               timestamp=timestamp, nonce=nonce, content_sha256=content_sha256)
    if not hmac.compare_digest(compute_signature(peek.secret, canonical), signature):
        return None
    config = worker_config_peek()
    if config is None:
        return None
    try:
        sent = orjson.loads(body)
        data = protocol.heartbeat_parse(sent) if isinstance(sent, dict) else None
    except Exception:  # not JSON, or not a heartbeat: the view's answer (400, 422) is the one to give
        return None
    if data is None:
        return None
    return worker_id, nonce, peek, data, config, at


class _Clients:
    """The lane's Redis client and PostgreSQL connections, one set per event loop (an async client
    belongs to the loop that made it)."""

    def __init__(self) -> None:
        import redis.asyncio

        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=settings.LEADOPS_REDIS_MAX_CONNECTIONS,
            timeout=settings.LEADOPS_REDIS_POOL_TIMEOUT_S)
        self.redis = redis.asyncio.Redis(connection_pool=pool)
        self.take = self.redis.register_script(TAKE_LUA)
        # Prepares the statement's parameters as the ORM would (no connection is opened through it).
        self.db = connections["default"]
        params = self.db.get_connection_params()
        # Parameters bound by the server, and the UPDATE prepared after a few runs (psycopg's
        # default), whatever LEADOPS_DB_PREPARE says for the pool: these connections only run this
        # statement (behind an old transaction-mode pooler the lane is turned off, docs/DEPLOY.md).
        params.pop("cursor_factory", None)
        params.pop("prepare_threshold", None)
        self._params = params
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(settings.LEADOPS_HEARTBEAT_LANE_CONNECTIONS)

    async def forget(self, key: str) -> None:
        await self.redis.delete(key)

    async def update(self, sql: str, params: list[Any]) -> Any:
        import psycopg

        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(autocommit=True, **self._params)
            try:
                cursor = await conn.execute(sql, params)
                row = await cursor.fetchone()
            except BaseException:
                await conn.close()  # never lent again in an unknown state
                raise
            self._idle.append(conn)
        return row[0] if row else None


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clients] = weakref.WeakKeyDictionary()


async def clients_close() -> None:
    """Close this loop's clients (a test's loop, before it ends)."""
    clients = _by_loop.pop(asyncio.get_running_loop(), None)
    if clients is not None:
        for conn in clients._idle:
            await conn.close()
        await clients.redis.aclose()


def _clients() -> _Clients:
    loop = asyncio.get_running_loop()
    clients = _by_loop.get(loop)
    if clients is None:
        clients = _by_loop[loop] = _Clients()
    return clients
