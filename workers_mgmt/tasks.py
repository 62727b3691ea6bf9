"""django-q2 entry points of the fleet."""

from __future__ import annotations

from workers_mgmt.services import credentials_expire, nonce_purge


def purge_old_nonces() -> int:
    return nonce_purge()


def expire_previous_credentials() -> int:
    """Revoke rotated-out keys whose grace has ended."""
    return credentials_expire()
