"""A short-lived per-process copy of the credentials that sign requests (docs/DEPLOY.md, issue 15).

Every signed request used to read its credential and worker with one ORM query (about 7% of a
pull's server CPU: docs/PERFORMANCE.md). Here a usable key (`current`, or `previous` in its grace)
is kept for `LEADOPS_CREDENTIAL_CACHE_S` seconds (default 5; 0 turns it off) with its decrypted
secret. A `pending` key is never kept: its first use promotes it, which must see the row.

A change made in this process (revoke, rotate, promote, expire, disable a worker, edit its rate
limit) clears the copy at once and again on commit; other server processes see it within the TTL.
So a revoked key or a disabled worker is refused everywhere at most that many seconds later.
"""

from __future__ import annotations

import copy
import threading
import time

from django.conf import settings
from django.db import transaction

from workers_mgmt.models import CredentialState, WorkerCredential

_CACHEABLE = (CredentialState.CURRENT, CredentialState.PREVIOUS)
_MOST_ENTRIES = 10_000

_entries: dict[str, tuple[float, WorkerCredential, str]] = {}
# Workers found, at that monotonic time, to have no push key waiting: their heartbeats skip the
# look-up for the same TTL. A rotation started in this process clears it (credential_cache_clear);
# one started in another process reaches the worker that many seconds later, on a later heartbeat.
_no_push_pending: dict[str, float] = {}
_lock = threading.Lock()


def credential_cached(key_id: str) -> tuple[WorkerCredential, str] | None:
    """A private copy of the cached credential (with its worker) and its secret, when fresh."""
    ttl = settings.LEADOPS_CREDENTIAL_CACHE_S
    entry = _entries.get(key_id) if ttl > 0 else None
    if entry is None or time.monotonic() - entry[0] >= ttl:
        return None
    # A deep copy per request: views change the worker object (heartbeat fields), and two requests
    # of one worker may run at once in two threads.
    return copy.deepcopy(entry[1]), entry[2]


def credential_remember(*, credential: WorkerCredential, secret: str) -> None:
    if settings.LEADOPS_CREDENTIAL_CACHE_S <= 0 or credential.state not in _CACHEABLE:
        return
    with _lock:
        if len(_entries) >= _MOST_ENTRIES:
            _entries.clear()
        _entries[credential.key_id] = (time.monotonic(), copy.deepcopy(credential), secret)


def push_pending_absent(worker_id: str) -> bool:
    """True when this worker was found without a pending push key less than the TTL ago."""
    ttl = settings.LEADOPS_CREDENTIAL_CACHE_S
    seen = _no_push_pending.get(worker_id) if ttl > 0 else None
    return seen is not None and time.monotonic() - seen < ttl


def push_pending_absent_remember(worker_id: str) -> None:
    if settings.LEADOPS_CREDENTIAL_CACHE_S <= 0:
        return
    with _lock:
        if len(_no_push_pending) >= _MOST_ENTRIES:
            _no_push_pending.clear()
        _no_push_pending[worker_id] = time.monotonic()


def _forget_all() -> None:
    _entries.clear()
    _no_push_pending.clear()


def credential_cache_clear() -> None:
    """Forget every cached credential, now and when the current transaction commits."""
    _forget_all()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_forget_all)


def credential_touched(*, key_id: str, at: object) -> None:
    """Keep the cached copy's last use current, so the once-a-minute touch stays once a minute."""
    entry = _entries.get(key_id)
    if entry is not None:
        entry[1].last_used_at = at  # type: ignore[assignment]


def credential_cache_worker_seen(*, worker_id: str, **values: object) -> None:
    """Carry a heartbeat's new worker fields into the cached copies of that worker's keys.

    The heartbeat decides "came online" from the previous heartbeat time on the worker it was
    given; without this, a second heartbeat within the TTL would read the time before the first.
    Another process's copy can lag by the TTL at most, which matters only for a worker that comes
    back after being overdue and sends two heartbeats within those seconds to two processes.
    """
    for _loaded, credential, _secret in list(_entries.values()):
        if credential.worker_id == worker_id:
            for name, value in values.items():
                setattr(credential.worker, name, value)


def _on_change(**kwargs: object) -> None:
    """Signal receiver: any save or delete of a worker or a credential (admin forms included)."""
    credential_cache_clear()


def credential_cache_connect() -> None:
    from django.db.models.signals import post_delete, post_save

    from workers_mgmt.models import Worker

    for model in (Worker, WorkerCredential):
        uid = f"credential-cache-{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}-save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}-delete")
