"""django-q2 entry points of the fleet."""

from __future__ import annotations

from workers_mgmt.services import nonce_purge


def purge_old_nonces() -> int:
    return nonce_purge()
