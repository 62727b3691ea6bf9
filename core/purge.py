"""Delete expired rows in batches, each batch its own short transaction (docs/PRIVACY.md, "Retention").

One DELETE of a million rows holds its locks and its WAL for the whole statement and makes every
writer of the table wait; a batch of a few thousand primary keys is done in milliseconds, and the
workers' pulls and reports slip in between batches.

Every purge also has a dry run (`dry_run=True`, `purge_retention --dry-run`) that walks the very same
batches and counts, at the one place where the purge would delete, what it would delete
(docs/RUNBOOK.md, "Retention and data-subject requests"). The batches move by key (each starts
after the last one's end), not by deleting what was read, so a dry run that keeps every row still
moves on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import models, transaction
from django.db.models import Q

DEFAULT_BATCH = 5000


def keyset_batches(*, queryset: models.QuerySet[Any], batch_size: int, order: str = "pk",
                   most: int | None = None) -> Iterator[list[Any]]:
    """Yield the primary keys of `queryset` in batches ordered by (`order`, pk), at most `most` in all.

    Each batch starts after the last row of the one before, whether or not that one was deleted.
    """
    after: tuple[Any, Any] | None = None
    given = 0
    while most is None or given < most:
        page = queryset
        if after is not None:
            value, pk = after
            page = (page.filter(pk__gt=pk) if order == "pk"
                    else page.filter(Q(**{f"{order}__gt": value}) | Q(**{order: value, "pk__gt": pk})))
        limit = batch_size if most is None else min(batch_size, most - given)
        rows = list(page.order_by(order, "pk").values_list(order, "pk")[:limit])
        if not rows:
            return
        yield [pk for _, pk in rows]
        given += len(rows)
        if len(rows) < limit:
            return
        after = rows[-1]


def delete_or_count(*, queryset: models.QuerySet[Any], dry_run: bool, raw: bool = False) -> int:
    """Delete the rows of `queryset` and return how many of its own model went; with `dry_run`,
    delete nothing and return how many would go.

    `raw` skips Django's collector (no cascades, no signals): only for models that nothing points
    at, where it saves a SELECT per batch.
    """
    if dry_run:
        return queryset.count()
    if raw:
        return int(queryset._raw_delete(queryset.db))
    _, per_model = queryset.delete()
    return per_model.get(queryset.model._meta.label, 0)


def batched_delete(*, queryset: models.QuerySet[Any], batch_size: int = DEFAULT_BATCH,
                   raw: bool = False, dry_run: bool = False) -> int:
    """Delete every row of `queryset` in primary-key batches; return how many rows of its model went
    (with `dry_run`: would go, and nothing is deleted).

    The batch is re-filtered by the queryset on delete, so a row that stopped matching in between
    (a job requeued, say) is kept.
    """
    deleted = 0
    for ids in keyset_batches(queryset=queryset, batch_size=batch_size):
        with transaction.atomic():
            deleted += delete_or_count(queryset=queryset.filter(pk__in=ids), dry_run=dry_run, raw=raw)
    return deleted
