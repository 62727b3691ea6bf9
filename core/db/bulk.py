"""Write many rows' new values in one UPDATE, for services that change rows they hold locked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection, models

from core.text import json_bytes

M = TypeVar("M", bound=models.Model)


def rows_update(*, model: type[M], rows: Sequence[M], fields: Sequence[str]) -> None:
    """Write these columns of these rows in one UPDATE, the new values sent as one JSON parameter.

    Django's `bulk_update` builds a CASE WHEN per column and row: at 10 rows and 9 columns that was
    over half of an exchange's server CPU (docs/PERFORMANCE.md, "Exchange"). Values are adapted as
    the ORM would store them (on SQLite: its text forms of datetimes, UUIDs and JSON). The caller
    holds the rows' locks: every row must be updated, or the statement fails (on PostgreSQL a
    `DataError` naming the table and the counts, on SQLite `RuntimeError`).
    """
    if not rows:
        return
    meta = model._meta
    pk = meta.pk
    assert pk is not None and pk.column is not None
    key = connection.ops.quote_name(pk.column)
    columns: list[Any] = [meta.get_field(name) for name in fields]
    for column in columns:
        # Concrete columns of the table itself only: never the key, a reverse relation or a m2m.
        if not getattr(column, "concrete", False) or column.primary_key or column.many_to_many:
            raise ValueError(f"{meta.label}.{column.name} is not a column rows_update can write.")
    everything: list[Any] = [pk, *columns]
    table = meta.db_table
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns)
    if connection.vendor == "postgresql":
        payload = [{f.column: f.value_from_object(row) for f in everything} for row in rows]
        types = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in everything)
        # The row count is checked by the statement itself: in a pipelined block (core/db/pipeline.py)
        # nobody waits for its count, and a wrong one must still fail the transaction. The failing
        # cast carries the message.
        sql = (f"WITH u AS (UPDATE {quote(table)} AS t SET {assignments} "
               f"FROM json_to_recordset(%s::json) AS v({types}) WHERE t.{key} = v.{key} RETURNING 1) "
               f"SELECT CASE WHEN count(*) = {len(rows)} THEN 0 "
               f"ELSE ('rows_update {table}: updated ' || count(*) || ' rows of {len(rows)}')::int "
               "END FROM u")
    else:
        payload = [{f.column: f.get_db_prep_value(f.value_from_object(row), connection, prepared=False)
                    for f in everything} for row in rows]
        picks = ", ".join(f"json_extract(value, '$.{f.column}') AS {quote(f.column)}" for f in everything)
        sql = (f"UPDATE {quote(table)} SET {assignments} FROM (SELECT {picks} FROM json_each(%s)) AS v "
               f"WHERE {quote(table)}.{key} = v.{key}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [json_bytes(payload).decode()])
        if connection.vendor != "postgresql" and cursor.rowcount != len(rows):
            raise RuntimeError(f"{table}: updated {cursor.rowcount} rows of {len(rows)}.")
