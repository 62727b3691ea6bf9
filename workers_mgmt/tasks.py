"""django-q2 entry points of the fleet."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from workers_mgmt.nonces import nonce_purge
from workers_mgmt.presence import workers_offline_announce
from workers_mgmt.purges import auth_failures_purge
from workers_mgmt.services import credentials_expire


def purge_old_nonces() -> int:
    return nonce_purge()


def expire_previous_credentials() -> int:
    """Revoke rotated-out keys whose grace has ended."""
    return credentials_expire()


def purge_auth_failures() -> int:
    """Delete `auth_failed` audit rows older than LEADOPS_AUTH_FAILURE_RETENTION_DAYS."""
    days = settings.LEADOPS_AUTH_FAILURE_RETENTION_DAYS
    return auth_failures_purge(older_than=timezone.now() - dt.timedelta(days=days))


def announce_offline_workers() -> int:
    return len(workers_offline_announce())
