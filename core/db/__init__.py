"""Database helpers of the kernel: the one-statement bulk row update, and (in `postgresql/`) the
database backend that adds a connection health check before a pooled connection is lent."""

from core.db.bulk import rows_update

__all__ = ["rows_update"]
