"""Retention of the credential audit: the purges the retention policy runs (docs/PRIVACY.md, "Retention").

Failed authentications and the rest of the trail are two data classes with their own periods; the
trail is append-only, so these are the only deletes it allows.
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction

from core.purge import delete_or_count, keyset_batches
from workers_mgmt.models import CredentialEvent, CredentialEventKind


def auth_failures_purge(*, older_than: dt.datetime, dry_run: bool = False) -> int:
    """Delete failed-authentication rows older than `older_than` (the other credential events stay)."""
    failed = CredentialEvent.objects.filter(kind=CredentialEventKind.AUTH_FAILED, created_at__lt=older_than)
    return delete_or_count(queryset=failed, dry_run=dry_run)


def credential_events_purge(*, older_than: dt.datetime, batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete credential audit rows older than `older_than`; failed authentications have their own
    class and purge (`auth_failures_purge`)."""
    expired = (CredentialEvent.objects.filter(created_at__lt=older_than)
               .exclude(kind=CredentialEventKind.AUTH_FAILED))
    deleted = 0
    for ids in keyset_batches(queryset=expired, batch_size=batch_size):
        with transaction.atomic():
            if connection.vendor == "postgresql" and not dry_run:
                # The trail's trigger refuses DELETE unless the retention purge says it is the one
                # (workers_mgmt migration 0001_squashed_0008); SET LOCAL ends with this transaction.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL leadops.retention_purge = 'on'")
            deleted += delete_or_count(queryset=expired.filter(pk__in=ids), dry_run=dry_run, raw=True)
    return deleted
