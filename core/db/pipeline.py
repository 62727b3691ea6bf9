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

from django.conf import settings
from django.db import connection


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
