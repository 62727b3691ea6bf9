"""Monotonic totals for /metrics: added to in the transaction of the change they count."""

from __future__ import annotations

import random

from django.db import connection
from django.db.models import Sum

from core.models import MetricCounter

# Rows per total. A transaction adds to the shard of its database connection (docs/PERFORMANCE.md,
# "What the fleet waited on"): two transactions in flight at once hold different connections, so
# they meet on one row only when their connections' shards collide. With 8 random shards, reports
# queued on these rows behind each other's commits.
SHARDS = 64


def connection_shard(shards: int) -> int:
    """A shard number for hot shared rows: the PostgreSQL backend's pid modulo `shards` (fixed for
    the connection, so concurrent transactions spread), else a random one (SQLite has one writer)."""
    if connection.vendor == "postgresql" and connection.connection is not None:
        return connection.connection.info.backend_pid % shards
    return random.randrange(shards)


def metric_totals_add(*, amounts: dict[str, int]) -> None:
    """Add to the named monotonic /metrics totals (`MetricCounter`, never purged).

    One statement; zero amounts are skipped. The hourly per-provider ingestion counters, which the
    retention policy purges, are another table (`ingestion.statements.ingest_counters_add`).
    """
    # Sorted: two transactions on one shard lock its rows in the same order, never crosswise.
    rows = sorted((name, amount) for name, amount in amounts.items() if amount)
    if not rows:
        return
    table = MetricCounter._meta.db_table
    shard = connection_shard(SHARDS)
    values = ", ".join(["(%s, %s, %s)"] * len(rows))
    params: list[str | int] = []
    for name, amount in rows:
        params += [name, shard, int(amount)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, shard, value) VALUES {values} "
            f"ON CONFLICT (name, shard) DO UPDATE SET value = {table}.value + excluded.value",
            params,
        )


def counters_read() -> dict[str, int]:
    """Every total by name (a sum over its shards)."""
    rows = MetricCounter.objects.values("name").annotate(total=Sum("value")).values_list("name", "total")
    return {name: int(total or 0) for name, total in rows}
