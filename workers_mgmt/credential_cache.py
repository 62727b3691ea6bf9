"""A per-process copy of the credentials that sign requests, invalidated in every process at once.

Every signed request needs its credential, its worker and the decrypted secret: one ORM query and a
Fernet decryption. This module keeps them per process, and uses a copy only while it is provably
current (docs/DEPLOY.md, "The credential copy"):

- Each worker has a *credential generation*. Every change that decides how that worker's requests
  are judged bumps it: a key added, promoted, revoked or expired; the worker enabled, disabled,
  deleted, or its rate limit changed (`credentials_changed`, called by the services; a save or
  delete of a worker or credential through the ORM bumps it too, by signal).
- A signed request reads the generation in the round trip it makes anyway for its nonce
  (`workers_mgmt/nonces.py`), and a copy made under another generation is dropped. So a change
  made in any process decides that worker's very next request in every process.

Where the generation lives:
- In the database, a column of the worker, bumped in the transaction that makes the change, so it
  turns visible exactly when the change does. Without Redis the nonce insert reads it (one
  primary-key read inside the same statement).
- With Redis, a counter per worker that the nonce script returns. Redis cannot take part in the
  database transaction, so a change is announced twice: before its commit a marker says "changing"
  (requests of that worker read the database and keep no copy while it is there), after the commit
  the counter moves and the marker goes. The marker expires by itself, so a process that dies in
  between costs that worker some database reads, never a stale answer. An epoch key, made anew when
  Redis lost its data, tells copies made before a Redis restart from those made after.

A copy also expires after LEADOPS_CREDENTIAL_CACHE_S seconds (0 turns copies off). A `pending` key
is never kept: its first use promotes it, which must see the row.
"""

from __future__ import annotations

import copy
import logging
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F, Model

from workers_mgmt.models import CredentialState, Worker, WorkerCredential

logger = logging.getLogger("leadops.auth")

ModelT = TypeVar("ModelT", bound=Model)

_CACHEABLE = (CredentialState.CURRENT, CredentialState.PREVIOUS)
_MOST_ENTRIES = 10_000
# How long a "changing" marker outlives its announcement at most: longer than any copy lives, so a
# copy made before a change whose process died before announcing it has expired when the marker does.
_MARKER_MARGIN_S = 60


@dataclass
class _Entry:
    loaded_at: float
    generation: str
    credential: WorkerCredential
    secret: str
    # The heartbeat found no push key waiting for this (current) key under this generation: a
    # rotation started anywhere bumps the generation, which drops the entry and this with it.
    push_absent: bool = False


_entries: dict[str, _Entry] = {}
_lock = threading.Lock()


def credential_cached(key_id: str, *, generation: str | None) -> tuple[WorkerCredential, str] | None:
    """A private copy of the credential (with its worker) and its secret, when current.

    `generation` is what this request read of the worker's credential generation; None means the
    worker is being changed right now (or is unknown), and no copy may be used.
    """
    entry = _entries.get(key_id)
    if entry is None:
        return None
    ttl = settings.LEADOPS_CREDENTIAL_CACHE_S
    if generation is None or entry.generation != generation or time.monotonic() - entry.loaded_at >= ttl:
        # Dropped, not kept for later: the heartbeat's push-key memo lives on the entry.
        _entries.pop(key_id, None)
        return None
    # A private copy per request: views change the worker object (heartbeat fields), and two requests
    # of one worker may run at once in two threads.
    return _private_copy(entry.credential), entry.secret


@dataclass(frozen=True)
class CredentialPeek:
    """This process's copy of a key as it stands, for a caller that confirms its generation later in
    a round trip of its own (the heartbeat's async lane): read it, never change it."""

    generation: str
    credential: WorkerCredential
    secret: str
    push_absent: bool


def credential_peek(key_id: str) -> CredentialPeek | None:
    """The copy of this key while it is within its life, whatever its generation; None without one.

    Nothing may be decided on it until the caller has read the worker's generation (the nonce
    script) and found it equal to `generation`: then the copy is current, as `credential_cached` says.
    """
    entry = _entries.get(key_id)
    if entry is None or time.monotonic() - entry.loaded_at >= settings.LEADOPS_CREDENTIAL_CACHE_S:
        return None
    return CredentialPeek(entry.generation, entry.credential, entry.secret, entry.push_absent)


def _instance_copy(instance: ModelT) -> ModelT:
    """A copy of a model instance whose field values and related-object cache are its own.

    A quarter of `copy.deepcopy`'s cost on the signed-request path: the instance's own dict and its
    state are copied, and only the mutable values in it (JSON dicts and lists) are copied deeply.
    """
    clone = copy.copy(instance)  # Model.__getstate__ gives the clone its own _state and fields cache
    for name, value in clone.__dict__.items():
        if isinstance(value, dict | list):
            clone.__dict__[name] = copy.deepcopy(value)
    return clone


def _private_copy(credential: WorkerCredential) -> WorkerCredential:
    clone = _instance_copy(credential)
    cache = clone._state.fields_cache
    if "worker" in cache:
        cache["worker"] = _instance_copy(cache["worker"])
    return clone


def credential_remember(*, credential: WorkerCredential, secret: str, generation: str | None) -> None:
    """Keep a copy made under `generation` (read before the credential was): never while changing."""
    if settings.LEADOPS_CREDENTIAL_CACHE_S <= 0 or generation is None or credential.state not in _CACHEABLE:
        return
    with _lock:
        if len(_entries) >= _MOST_ENTRIES:
            _entries.clear()
        _entries[credential.key_id] = _Entry(time.monotonic(), generation, copy.deepcopy(credential), secret)


def push_pending_absent(key_id: str) -> bool:
    """True when a heartbeat signed with this key found no push key waiting, under its generation."""
    entry = _entries.get(key_id)
    return (entry is not None and entry.push_absent
            and time.monotonic() - entry.loaded_at < settings.LEADOPS_CREDENTIAL_CACHE_S)


def push_pending_absent_remember(key_id: str) -> None:
    entry = _entries.get(key_id)
    if entry is not None:
        entry.push_absent = True


def credential_touched(*, key_id: str, at: object) -> None:
    """Keep the cached copy's last use current, so the once-a-minute touch stays once a minute."""
    entry = _entries.get(key_id)
    if entry is not None:
        entry.credential.last_used_at = at  # type: ignore[assignment]


def credential_cache_worker_seen(*, worker_id: str, **values: object) -> None:
    """Carry a heartbeat's new worker fields into the cached copies of that worker's keys.

    The heartbeat decides "came online" from the previous heartbeat time on the worker it was
    given; without this, a second heartbeat within the copy's life would read the time before the
    first. Another process's copy can lag by the copy's life at most, which matters only for a worker
    that comes back after being overdue and sends two heartbeats within those seconds to two processes.
    """
    for entry in list(_entries.values()):
        if entry.credential.worker_id == worker_id:
            for name, value in values.items():
                setattr(entry.credential.worker, name, value)


def _forget_all() -> None:
    _entries.clear()


def _forget_workers(worker_ids: set[str]) -> None:
    """Drop this process's copies of these workers' keys (the others stay: their generation did not move)."""
    for key_id, entry in list(_entries.items()):
        if entry.credential.worker_id in worker_ids:
            _entries.pop(key_id, None)


# --- announcing a change --------------------------------------------------------------------------


def credentials_changed(*, worker_ids: Iterable[str]) -> None:
    """Announce a change of these workers' keys or settings to every process.

    Call it inside the transaction that makes the change (before or after its writes): the database
    generation moves with the change, and with Redis the change is marked before the commit and
    announced after it. Outside a transaction the change is taken as committed already.
    """
    ids = sorted({worker_id for worker_id in worker_ids if worker_id})
    if not ids:
        return
    # This process drops its copies at once and again on commit (a request between the two may have
    # copied the state before the commit); the generation tells every other process.
    _forget_workers(set(ids))
    in_transaction = transaction.get_connection().in_atomic_block
    if in_transaction:
        transaction.on_commit(lambda: _forget_workers(set(ids)))
    Worker.objects.filter(pk__in=ids).update(credential_generation=F("credential_generation") + 1)
    if not settings.REDIS_URL:
        return
    if not in_transaction:
        _redis_announce(ids, marker=None)
        return
    marker = _redis_mark(ids)
    transaction.on_commit(lambda: _redis_announce(ids, marker=marker))


def generation_keys(worker_id: str) -> tuple[str, str, str]:
    """The Redis keys of one worker's generation: (epoch, counter, "changing" marker)."""
    prefix = f"{settings.LEADOPS_REDIS_PREFIX}:cred"
    return f"{prefix}:epoch", f"{prefix}:gen:{worker_id}", f"{prefix}:changing:{worker_id}"


def new_epoch() -> str:
    return secrets.token_hex(8)


def _redis_mark(ids: list[str]) -> str | None:
    from core.redis import redis_client

    marker = secrets.token_hex(8)
    ttl = int(settings.LEADOPS_CREDENTIAL_CACHE_S) + _MARKER_MARGIN_S
    try:
        pipe = redis_client().pipeline(transaction=False)
        for worker_id in ids:
            changing = generation_keys(worker_id)[2]
            pipe.hset(changing, marker, 1)
            pipe.expire(changing, ttl)
        pipe.execute()
    except redis.RedisError as exc:
        # The change itself must go through (an emergency revoke above all). While Redis is out of
        # reach no signed request is accepted anyway (the nonce lives there); copies made before
        # expire within LEADOPS_CREDENTIAL_CACHE_S.
        logger.warning("credential change of %d worker(s) not marked in Redis: %s", len(ids), exc)
        return None
    return marker


def _redis_announce(ids: list[str], *, marker: str | None) -> None:
    from core.redis import redis_client

    try:
        pipe = redis_client().pipeline(transaction=False)
        for worker_id in ids:
            _epoch, counter, changing = generation_keys(worker_id)
            pipe.incr(counter)
            if marker is not None:
                pipe.hdel(changing, marker)
        pipe.execute()
    except redis.RedisError as exc:
        # The marker (when set) stays until it expires, so requests keep reading the database.
        logger.warning("credential change of %d worker(s) not announced in Redis: %s", len(ids), exc)


def _on_change(sender: type, instance: Worker | WorkerCredential, created: bool = False,
               **kwargs: object) -> None:
    """Signal receiver: a save or delete of a worker or a credential through the ORM (admin forms,
    a shell) is announced like a service's change.

    A new row needs no announcement: no process holds a copy of what did not exist (a rotation's new
    pending key is announced by `credential_rotate` itself, for the heartbeat's push-key memo).
    """
    if created:
        return
    worker_id = instance.pk if isinstance(instance, Worker) else instance.worker_id
    credentials_changed(worker_ids=[worker_id])


def credential_cache_connect() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (Worker, WorkerCredential):
        uid = f"credential-cache-{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}-save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}-delete")
