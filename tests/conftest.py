"""Fixtures shared by the whole suite: database vendor markers, a signed worker client."""

from __future__ import annotations

import pytest
from django.db import connection


def pytest_collection_modifyitems(config, items):
    # Tests that only mean something on PostgreSQL (row locks, SKIP LOCKED, concurrency) skip on
    # SQLite with that reason; on the PostgreSQL leg nothing skips them.
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://...); SQLite has no row locks")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
