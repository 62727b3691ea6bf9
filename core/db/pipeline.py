"""Send a transaction's statements without waiting for answers nobody reads (docs/PERFORMANCE.md,
"Round trips").

An exchange made 22 round trips to PostgreSQL, and at a thousand workers its latency was their
number times the machine's queueing, not its CPU. In psycopg's pipeline mode a statement whose
result the code does not read (an UPDATE, an INSERT without RETURNING, BEGIN, COMMIT) is sent and
not waited for: it travels with the next statement whose rows are fetched, or with the end of the
block. The statements, their order and the transaction are the same; only the waiting goes.

The price: an error of a statement nobody read surfaces at the next read or at the block's end,
not where the statement was written. Wrap only code that does not catch a database error of such
a statement itself (an `except IntegrityError` around a `.create()` is fine: it reads the new id).
`rows_update` checks its row count inside the statement for this reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection


@contextmanager
def pipelined() -> Iterator[None]:
    """Run the block in psycopg's pipeline mode on PostgreSQL; elsewhere, or when
    `LEADOPS_DB_PIPELINE` is off, a plain block. Put it outside `transaction.atomic()` so BEGIN
    and COMMIT travel with the statements next to them."""
    if connection.vendor != "postgresql" or not settings.LEADOPS_DB_PIPELINE:
        yield
        return
    connection.ensure_connection()
    with connection.connection.pipeline():
        yield
