"""Retention of the credential audit: the purges the retention policy runs (docs/PRIVACY.md, "Retention").

Failed authentications and the rest of the trail are two data classes with their own periods; the
trail is append-only, so these are the only deletes it allows.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

from workers_mgmt.models import CredentialEvent, CredentialEventKind


def auth_failures_purge(*, older_than: dt.datetime) -> int:
    """Delete failed-authentication rows older than `older_than` (the other credential events stay)."""
    deleted, _ = CredentialEvent.objects.filter(kind=CredentialEventKind.AUTH_FAILED,
                                                created_at__lt=older_than).delete()
    return deleted


def credential_events_purge(*, older_than: dt.datetime, batch_size: int = 5000) -> int:
    """Delete credential audit rows older than `older_than`; failed authentications have their own
    class and purge (`auth_failures_purge`)."""
    deleted = 0
    while True:
        ids = list(CredentialEvent.objects.filter(created_at__lt=older_than)
                   .exclude(kind=CredentialEventKind.AUTH_FAILED)
                   .order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # The trail's trigger refuses DELETE unless the retention purge says it is the one
                # (workers_mgmt migration 0001_squashed_0008); SET LOCAL ends with this transaction.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL leadops.retention_purge = 'on'")
            deleted += CredentialEvent.objects.filter(pk__in=ids)._raw_delete(CredentialEvent.objects.db)
        if len(ids) < batch_size:
            return deleted
