"""Send a transaction's statements without waiting for answers nobody reads (docs/PERFORMANCE.md,
"Round trips").

An exchange made 22 round trips to PostgreSQL, and at a thousand workers its latency was their
number times the machine's queueing, not its CPU. In psycopg's pipeline mode a statement whose
result the code does not read (an UPDATE, an INSERT without RETURNING, BEGIN, COMMIT) is sent and
not waited for: it travels with the next statement whose rows are fetched (or whose row count is
read), or with the end of the block. The statements, their order and the transaction are the same;
only the waiting goes.

The price: an error of a statement nobody read surfaces at the next read or at the block's end,
not where the statement was written. Wrap only code that does not catch a database error of such
a statement itself (an `except IntegrityError` around a `.create()`, an `.update()` or a
`.save()` is fine: each reads the new id or the row count, and core/db/postgresql/base.py makes a
row count wait for its statement and a savepoint's rollback clear the pipeline's error state).
`rows_update` checks its row count inside the statement, so it needs no wait at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Model, QuerySet


@contextmanager
def pipelined() -> Iterator[None]:
    """Run the block in psycopg's pipeline mode on PostgreSQL; elsewhere, or when
    `LEADOPS_DB_PIPELINE` is off, a plain block.

    Put it inside `transaction.atomic()`: psycopg waits for a Sync whenever autocommit is switched
    in pipeline mode, which Django does on entering and leaving the outermost atomic block (two
    round trips more). Inside, BEGIN and COMMIT cost what they cost without it, and the block's
    end waits once for whatever is still on its way."""
    if connection.vendor != "postgresql" or not settings.LEADOPS_DB_PIPELINE:
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield


@dataclass(frozen=True)
class FixedRead:
    """Whole rows of `model` by a statement written once: `<head> SELECT <every column> FROM <table>
    WHERE <where> <tail>`, built once per shape and run with `params`. For a hot read whose queryset
    Django would compile anew on every call (a third of the report's reads' CPU was that compile;
    docs/PERFORMANCE.md, "The fleet's exchange, stage by stage"). `head`, on PostgreSQL, is a WITH
    clause whose writes run in the same statement (their parameters come first in `params`): one
    round trip for a write and the read after it. `related` names a non-null foreign key of `model`
    whose row is read in the same statement and set on each instance, as `select_related` does (then
    `where` and `tail` qualify their columns with the table's name). `where`, `tail`, `head` and
    `related` are the caller's, never data."""

    model: type[Model]
    where: str
    params: Sequence[Any]
    tail: str = ""
    head: str = ""
    related: str = ""

    def sql(self) -> str:
        return _fixed_sql(connection.vendor, self.model, self.where, self.tail, self.head, self.related)


@lru_cache(maxsize=64)
def _fixed_sql(vendor: str, model: type[Model], where: str, tail: str, head: str, related: str) -> str:
    """Built once per shape, per database vendor (each quotes its own names)."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    if not related:
        columns = ", ".join(quote(str(field.column)) for field in model._meta.concrete_fields)
        return f"{head} SELECT {columns} FROM {table} WHERE {where} {tail}".lstrip()
    key: Any = model._meta.get_field(related)
    parent = key.related_model._meta
    joined = quote(parent.db_table)
    columns = ", ".join([*(f"{table}.{quote(str(f.column))}" for f in model._meta.concrete_fields),
                         *(f"{joined}.{quote(str(f.column))}" for f in parent.concrete_fields)])
    on = f"{joined}.{quote(str(parent.pk.column))} = {table}.{quote(str(key.column))}"
    join = f"INNER JOIN {joined} ON {on}"
    return f"{head} SELECT {columns} FROM {table} {join} WHERE {where} {tail}".lstrip()


def _instances_of(model: type[Model]) -> Any:
    """A maker of `model` instances from its concrete columns' values, each value through its field's
    converters, as the ORM's own iteration does."""
    fields = model._meta.concrete_fields
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, found, column))
    names = [field.attname for field in fields]

    def make(values: list[Any]) -> Model:
        for index, found, column in converters:
            for convert in found:
                values[index] = convert(values[index], column, connection)
        return model.from_db(connection.alias, names, values)

    return make


def _fixed_rows(read: FixedRead, rows: list[tuple[Any, ...]]) -> list[Any]:
    """Model instances from a `FixedRead`'s rows (with their `related` row set on each)."""
    make = _instances_of(read.model)
    if not read.related:
        return [make(list(row)) for row in rows]
    width = len(read.model._meta.concrete_fields)
    key: Any = read.model._meta.get_field(read.related)
    make_related = _instances_of(key.related_model)
    out = []
    for row in rows:
        instance = make(list(row[:width]))
        key.set_cached_value(instance, make_related(list(row[width:])))
        out.append(instance)
    return out


def rows_together(*querysets: QuerySet[Any] | FixedRead) -> list[list[Any]]:
    """Each queryset's model instances, every statement sent, in this order, before any is waited
    for: in a pipelined block one round trip for all of them, elsewhere one each.

    PostgreSQL runs them in the order sent, so a locking read first (`select_for_update`) still
    holds its locks before the reads after it look. Plain model rows only: no `select_related`,
    `only()`, `values()` or annotations (checked). Values go through the fields' converters, as
    the ORM's own iteration does. A `FixedRead` in the list is sent the same way, its SQL uncompiled.
    """
    sent: list[tuple[Any, Any, Any]] = []  # (queryset or read, its compiler, its cursor or None)
    try:
        for queryset in querysets:
            if isinstance(queryset, FixedRead):
                cursor = connection.cursor()
                sent.append((queryset, None, cursor))
                cursor.execute(queryset.sql(), queryset.params)
                continue
            query = queryset.query
            if query.select_related or query.deferred_loading != (frozenset(), True) or query.annotations:
                raise ValueError(f"rows_together takes plain {queryset.model.__name__} rows only.")
            compiler = query.get_compiler(using=queryset.db)
            try:
                sql, params = compiler.as_sql()
            except EmptyResultSet:  # `pk__in=[]`: nothing to ask
                sent.append((queryset, compiler, None))
                continue
            cursor = connection.cursor()
            sent.append((queryset, compiler, cursor))
            cursor.execute(sql, params)
        results: list[list[Any]] = []
        for queryset, compiler, cursor in sent:
            if cursor is None:
                results.append([])
                continue
            if isinstance(queryset, FixedRead):
                results.append(_fixed_rows(queryset, cursor.fetchall()))
                continue
            names = [field.attname for field in queryset.model._meta.concrete_fields]
            assert compiler.col_count == len(names), "rows_together: the query selects other columns"
            rows = compiler.results_iter(results=[cursor.fetchall()])
            results.append([queryset.model.from_db(queryset.db, names, tuple(row)) for row in rows])
        return results
    finally:
        for _, _, cursor in sent:
            if cursor is not None:
                cursor.close()
