"""Replay protection: each request nonce is taken once per worker within its window."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection
from django.utils import timezone

from workers_mgmt.models import RequestNonce


def nonce_record(*, worker_id: str, nonce: str, seen_at: dt.datetime) -> bool:
    """Remember a request nonce; False when this worker already used it (a replay)."""
    if settings.REDIS_URL:
        from core.redis import redis_client

        key = f"{settings.LEADOPS_REDIS_PREFIX}:nonce:{worker_id}:{nonce}"
        return bool(redis_client().set(key, b"1", nx=True, ex=settings.LEADOPS_NONCE_TTL_S))
    # One statement on both databases: the unique constraint decides, RETURNING says who won.
    table = RequestNonce._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (worker_id, nonce, seen_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (worker_id, nonce) DO NOTHING RETURNING id",
            [worker_id, nonce, seen_at],
        )
        return cursor.fetchone() is not None


def nonce_purge(*, older_than: dt.datetime | None = None) -> int:
    """Forget nonces past their window; a replay that old fails the timestamp check anyway."""
    cutoff = older_than or timezone.now() - dt.timedelta(seconds=settings.LEADOPS_NONCE_TTL_S)
    deleted, _ = RequestNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted
