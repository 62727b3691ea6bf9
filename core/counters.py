"""Monotonic totals for /metrics: added to in the transaction of the change they count."""

from __future__ import annotations

import random

from django.db import connection
from django.db.models import Sum

from core.models import MetricCounter

SHARDS = 8


def counters_add(*, amounts: dict[str, int]) -> None:
    """Add to the named totals (one statement; zero amounts are skipped)."""
    rows = [(name, amount) for name, amount in amounts.items() if amount]
    if not rows:
        return
    table = MetricCounter._meta.db_table
    shard = random.randrange(SHARDS)
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
