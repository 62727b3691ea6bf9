"""Helpers of the queue's admin actions and searches."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from django.db.models import QuerySet

# Actions over "all N jobs" hand the services their ids in slices, so no statement carries more
# parameters than a database accepts (PostgreSQL stops at 65,535).
ACTION_CHUNK = 1000


def id_chunks(queryset: QuerySet) -> Iterator[list[int]]:
    # The ids are read in full before the first write, so the services' updates cannot shift a
    # cursor still walking the same rows.
    ids = iter(list(queryset.order_by().values_list("pk", flat=True)))
    while chunk := list(islice(ids, ACTION_CHUNK)):
        yield chunk


def int_term(search_term: str) -> int | None:
    term = search_term.strip().lstrip("#")
    return int(term) if term.isdecimal() and len(term) < 19 else None
