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

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet


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


def rows_together(*querysets: QuerySet[Any]) -> list[list[Any]]:
    """Each queryset's model instances, every statement sent, in this order, before any is waited
    for: in a pipelined block one round trip for all of them, elsewhere one each.

    PostgreSQL runs them in the order sent, so a locking read first (`select_for_update`) still
    holds its locks before the reads after it look. Plain model rows only: no `select_related`,
    `only()`, `values()` or annotations (checked). Values go through the fields' converters, as
    the ORM's own iteration does.
    """
    sent: list[tuple[QuerySet[Any], Any, Any]] = []  # (queryset, its compiler, its cursor or None)
    try:
        for queryset in querysets:
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
            names = [field.attname for field in queryset.model._meta.concrete_fields]
            assert compiler.col_count == len(names), "rows_together: the query selects other columns"
            rows = compiler.results_iter(results=[cursor.fetchall()])
            results.append([queryset.model.from_db(queryset.db, names, tuple(row)) for row in rows])
        return results
    finally:
        for _, _, cursor in sent:
            if cursor is not None:
                cursor.close()
