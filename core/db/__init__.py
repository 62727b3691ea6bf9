"""Database helpers of the kernel: the one-statement bulk row insert and update, the pipelined block, and (in
`postgresql/`) the database backend that adds a connection health check before a pooled connection is lent."""

from core.db.bulk import rows_insert, rows_update
from core.db.pipeline import FixedRead, pipelined, rows_together

__all__ = ["FixedRead", "pipelined", "rows_insert", "rows_together", "rows_update"]
