"""One Redis client per process, for the hot-path stores (nonces, GCRA).

Django's cache object is created per request context under ASGI, which would build a new
connection pool on every request; this client and its pool live as long as the process.
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def redis_client() -> redis.Redis:
    return _client(settings.REDIS_URL)
