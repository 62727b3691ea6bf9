"""One Redis client per process, for the hot-path stores (nonces, GCRA).

Django's cache object is created per request context under ASGI, which would build a new
connection pool on every request; this client and its pool live as long as the process.

The pool blocks when all its connections are busy: redis-py's default pool refuses the 101st
concurrent user, which a burst of a fleet's requests reaches at once (every request runs in its own
thread under ASGI) and which answered 503 (docs/PERFORMANCE.md, "What the fleet waited on"). A Redis
call takes well under a millisecond, so a waiting thread gets a connection almost at once.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=settings.LEADOPS_REDIS_MAX_CONNECTIONS,
                                                 timeout=settings.LEADOPS_REDIS_POOL_TIMEOUT_S)
    return redis.Redis(connection_pool=pool)


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)
