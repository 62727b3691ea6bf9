"""Many rows in one statement: new rows in one INSERT, and new values of rows a service holds locked in
one UPDATE."""

from __future__ import annotations

import functools
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


def rows_insert(*, model: type[M], rows: Sequence[M]) -> None:
    """Insert new rows in one INSERT, their values sent as one JSON parameter; sets generated keys.

    Django's `bulk_create` on PostgreSQL sends each column as an array through `UNNEST`, and with
    client-side binding psycopg renders those arrays in Python: the monitor outbox's events of an
    exchange cost about a tenth of its server CPU that way (docs/PERFORMANCE.md, "Rows in as one
    JSON parameter"). Here PostgreSQL reads the rows from one JSON text (`json_to_recordset`). The
    values are the ones `bulk_create` stores (each field's `pre_save`, so `auto_now_add` too), and
    a generated key comes back onto its row. Elsewhere than PostgreSQL, for an inherited model, a
    JSON field with its own encoder, or rows of which only some have their key, this is
    `bulk_create`.
    """
    if not rows:
        return
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    keyless = [row.pk is None for row in rows]
    generated = pk.db_returning and all(keyless)
    plan = _insert_plan(model, generated) if connection.vendor == "postgresql" else None
    if plan is None or (any(keyless) and not generated):
        model._default_manager.bulk_create(rows)
        return
    fields, sql = plan
    payload = [{f.column: f.pre_save(row, True) for f in fields} for row in rows]
    with connection.cursor() as cursor:
        cursor.execute(sql, [json_bytes(payload).decode()])
        if generated:
            keys = sorted(key for (key,) in cursor.fetchall())
            for row, key in zip(rows, keys, strict=True):
                setattr(row, pk.attname, key)
    for row in rows:
        row._state.adding, row._state.db = False, connection.alias


@functools.cache
def _insert_plan(model: type[models.Model], generated: bool) -> tuple[list[Any], str] | None:
    """`rows_insert`'s columns and statement for a model on PostgreSQL (the same for every call: the
    column types alone were a third of its cost); None where it uses `bulk_create` instead."""
    meta = model._meta
    if meta.parents or any(getattr(f, "encoder", None) is not None for f in meta.local_concrete_fields):
        return None
    fields: list[Any] = [f for f in meta.local_concrete_fields if not (generated and f is meta.pk)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    types = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
    # In the given order (WITH ORDINALITY), so the keys a sequence hands out follow the rows.
    sql = (f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} FROM "
           f"ROWS FROM (json_to_recordset(%s::json) AS ({types})) WITH ORDINALITY AS v({columns}, row_at) "
           "ORDER BY row_at")
    if generated:
        pk: Any = meta.pk
        sql += f" RETURNING {quote(pk.column)}"
    return fields, sql
