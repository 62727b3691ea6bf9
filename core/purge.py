"""Delete expired rows in batches, each batch its own short transaction (docs/PRIVACY.md, "Retention").

One DELETE of a million rows holds its locks and its WAL for the whole statement and makes every
writer of the table wait; a batch of a few thousand primary keys is done in milliseconds, and the
workers' pulls and reports slip in between batches.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

DEFAULT_BATCH = 5000


def batched_delete(*, queryset: models.QuerySet[Any], batch_size: int = DEFAULT_BATCH,
                   raw: bool = False) -> int:
    """Delete every row of `queryset` in primary-key batches; return how many rows of its model went.

    The batch is re-filtered by the queryset on delete, so a row that stopped matching in between
    (a job requeued, say) is kept. `raw` skips Django's collector (no cascades, no signals): only for
    models that nothing points at, where it saves a SELECT per batch.
    """
    model = queryset.model
    label = model._meta.label
    deleted = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            batch = queryset.filter(pk__in=ids)
            if raw:
                deleted += batch._raw_delete(batch.db)
            else:
                _, per_model = batch.delete()
                deleted += per_model.get(label, 0)
        if len(ids) < batch_size:
            return deleted
