"""Django's PostgreSQL backend, with a pool that sweeps itself when it finds one dead connection, and
a cursor whose row count can be trusted in a pipelined block.

After PostgreSQL restarts (or `pg_terminate_backend`, or a failover) every idle connection of every
pool is dead. psycopg's pool checks a connection before lending it (`CONN_HEALTH_CHECKS`), but it
backs off 1, 2, 4, 8 s between failed checks, so a pool holding five or more dead connections made
the request that drew them wait past the pool timeout and answer 503. Here the first failed check
also checks every other idle connection at once (`ConnectionPool.check`, which replaces the broken
ones), so the next try, about a second later, gets a live connection (docs/RELIABILITY.md,
"Database connection loss").

In psycopg's pipeline mode (core/db/pipeline.py) a statement's results, its row count among them,
arrive only when something waits for them; until then `rowcount` reads -1. Django reads it for
`QuerySet.update()`, `delete()` and `Model.save()`, and code decides on it (a breaker moved or not).
The cursor here waits for its own results before answering, as psycopg does before a fetch.

The check itself is a round trip on every request that draws a connection. As HikariCP does
(`aliveBypassWindowMs`), a connection given back to the pool less than LEADOPS_DB_CHECK_BYPASS_S ago
is lent unchecked, unless something arrived on its socket since: a server that closes a connection
(a restart, `pg_terminate_backend`, a shutdown) sends its reason and hangs up first, which makes the
idle socket readable. A server gone silently within that window fails the one request that draws
the connection (503, docs/RELIABILITY.md), as a check made a moment earlier would have passed.

And an error in pipeline mode skips every later command until a Sync: a savepoint rolled back
after a caught error (`get_or_create`, a compare-and-set that lost its race) would be skipped too
and leave the transaction aborted. The rollback to a savepoint sends that Sync first.
"""

from __future__ import annotations

import contextlib
import select
import time
from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


class _PipelineRowcount:
    @property
    def rowcount(self) -> int:
        # Nothing to wait for outside a pipeline, or once the results are in (psycopg's own step
        # before a fetch).
        self._fetch_pipeline()  # type: ignore[attr-defined]
        return self._rowcount  # type: ignore[attr-defined]


class Cursor(_PipelineRowcount, base.Cursor):
    """Django's cursor (parameters bound on the client), with a row count a pipeline can trust."""


class ServerBindingCursor(_PipelineRowcount, base.ServerBindingCursor):
    """Django's cursor with parameters bound by the server (LEADOPS_DB_PREPARE), likewise."""


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        ours: dict[Any, Any] = {base.Cursor: Cursor, base.ServerBindingCursor: ServerBindingCursor}
        factory = params.get("cursor_factory")
        params["cursor_factory"] = ours.get(factory, factory)
        return params

    def _savepoint_rollback(self, sid: str) -> None:
        pipeline = getattr(self.connection, "_pipeline", None)  # psycopg's open pipeline, if any
        if pipeline is not None:
            # An error it raises is one of a statement inside the savepoint this rolls back.
            with contextlib.suppress(psycopg.Error):
                pipeline.sync()
        super()._savepoint_rollback(sid)  # type: ignore[misc]

    def _close(self) -> None:
        if self.connection is not None and self.pool:
            self.connection._leadops_returned_at = time.monotonic()
        super()._close()  # type: ignore[misc]

    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        # Django builds the pool with the stock check; replace it once per pool, before first use.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = _sweeping_check(pool)
        return pool


def _recently_quiet(conn: Any) -> bool:
    """Given back within the bypass window, idle, and nothing on its socket since."""
    returned = getattr(conn, "_leadops_returned_at", None)
    if returned is None or time.monotonic() - returned >= settings.LEADOPS_DB_CHECK_BYPASS_S:
        return False
    if conn.closed or conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        poller = select.poll()  # not select(): a busy server holds descriptors past 1024
        poller.register(conn.pgconn.socket, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError, psycopg.Error):
        return False


def _sweeping_check(pool: ConnectionPool) -> Any:
    def check(conn: Any) -> None:
        if _recently_quiet(conn):
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool.check()
            raise

    return check
