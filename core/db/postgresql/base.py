"""Django's PostgreSQL backend, with a pool that sweeps itself when it finds one dead connection.

After PostgreSQL restarts (or `pg_terminate_backend`, or a failover) every idle connection of every
pool is dead. psycopg's pool checks a connection before lending it (`CONN_HEALTH_CHECKS`), but it
backs off 1, 2, 4, 8 s between failed checks, so a pool holding five or more dead connections made
the request that drew them wait past the pool timeout and answer 503. Here the first failed check
also checks every other idle connection at once (`ConnectionPool.check`, which replaces the broken
ones), so the next try, about a second later, gets a live connection (docs/RELIABILITY.md,
"Database connection loss").
"""

from __future__ import annotations

from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        # Django builds the pool with the stock check; replace it once per pool, before first use.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = _sweeping_check(pool)
        return pool


def _sweeping_check(pool: ConnectionPool) -> Any:
    def check(conn: Any) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool.check()
            raise

    return check
