"""Every write of the fleet: workers, credentials, heartbeats, nonces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from leadops import events
from leadops.clock import now as clock_now
from workers_mgmt.crypto import encrypt_secret, new_key_id, new_secret
from workers_mgmt.models import CredentialState, RequestNonce, Worker, WorkerConfig, WorkerCredential


@dataclass(frozen=True)
class IssuedCredential:
    """A credential with its plain secret: shown to a person or sent to a worker once."""

    worker_id: str
    key_id: str
    # Kept out of repr() so a traceback or an error report never prints it.
    secret: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"worker_id": self.worker_id, "key_id": self.key_id, "secret": self.secret}


def worker_create(
    *, worker_id: str, name: str = "", channel: str = "stable", rate_limit_per_min: int | None = None,
    notes: str = "",
) -> tuple[Worker, IssuedCredential]:
    """Create a worker and its first (current) credential."""
    worker = Worker(
        id=worker_id, name=name or worker_id, channel=channel, notes=notes,
        rate_limit_per_min=rate_limit_per_min or settings.LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN,
    )
    worker.full_clean()
    with transaction.atomic():
        worker.save(force_insert=True)
        issued = _credential_add(worker=worker, state=CredentialState.CURRENT)
    return worker, issued


def worker_credential_issue(*, worker: Worker) -> tuple[WorkerCredential, str]:
    """Replace every key of `worker` with one new current key, returning it and its secret.

    This is the blunt tool (used by the simulated fleet and by tests): all older keys are revoked at
    once. Graceful rotation that keeps a healthy worker running is `rotate_worker_secret`.
    """
    with transaction.atomic():
        WorkerCredential.objects.filter(worker=worker).exclude(state=CredentialState.REVOKED).update(
            state=CredentialState.REVOKED, grace_until=None, updated_at=clock_now()
        )
        issued = _credential_add(worker=worker, state=CredentialState.CURRENT)
    return WorkerCredential.objects.get(key_id=issued.key_id), issued.secret


def _credential_add(*, worker: Worker, state: str) -> IssuedCredential:
    secret = new_secret()
    credential = WorkerCredential.objects.create(
        key_id=new_key_id(), worker=worker, secret_encrypted=encrypt_secret(secret), state=state
    )
    return IssuedCredential(worker_id=worker.id, key_id=credential.key_id, secret=secret)


def nonce_record(*, worker_id: str, nonce: str, seen_at: dt.datetime) -> bool:
    """Remember a request nonce; False when this worker already used it (a replay)."""
    if settings.REDIS_URL:
        from leadops.redis import redis_client

        key = f"{settings.LEADOPS_REDIS_PREFIX}:nonce:{worker_id}:{nonce}"
        return bool(redis_client().set(key, b"1", nx=True, ex=settings.LEADOPS_NONCE_TTL_S))
    # One statement on both databases: the unique constraint decides, RETURNING says who won.
    table = RequestNonce._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (worker_id, nonce, seen_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (worker_id, nonce) DO NOTHING RETURNING id",
            [worker_id, nonce, seen_at],
        )
        return cursor.fetchone() is not None


def nonce_purge(*, older_than: dt.datetime | None = None) -> int:
    """Forget nonces past their window; a replay that old fails the timestamp check anyway."""
    cutoff = older_than or clock_now() - dt.timedelta(seconds=settings.LEADOPS_NONCE_TTL_S)
    deleted, _ = RequestNonce.objects.filter(seen_at__lt=cutoff).delete()
    return deleted


def credential_touch(*, credential: WorkerCredential, at: dt.datetime) -> None:
    """Record that a key was used, at most once a minute per key to keep the hot path light."""
    if credential.last_used_at and at - credential.last_used_at < dt.timedelta(seconds=60):
        return
    WorkerCredential.objects.filter(key_id=credential.key_id).update(last_used_at=at)


def worker_heartbeat(
    *, worker: Worker, version: str, status: str, running_jobs: int, metrics: dict[str, Any] | None,
    ip: str | None,
) -> Worker:
    """Store what a worker says about itself; one UPDATE (and live monitor events, no writes)."""
    at = clock_now()
    previous = worker.last_heartbeat_at
    Worker.objects.filter(pk=worker.pk).update(
        last_heartbeat_at=at, reported_version=version, reported_status=status,
        running_jobs=running_jobs, last_metrics=metrics or {}, last_ip=ip, updated_at=at,
    )
    worker.last_heartbeat_at = at
    worker.reported_version = version
    overdue = dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    if previous is None or at - previous > overdue:
        events.publish("worker.online", worker_id=worker.pk)
    events.publish("worker.heartbeat", worker_id=worker.pk, version=version, status=status,
                   running_jobs=running_jobs)
    return worker


def worker_config_get() -> WorkerConfig:
    config, _ = WorkerConfig.objects.get_or_create(pk=1)
    return config


def worker_config_save(*, config: WorkerConfig) -> WorkerConfig:
    """Save a config change and bump its version so workers know to reload."""
    with transaction.atomic():
        config.save()
        WorkerConfig.objects.filter(pk=config.pk).update(version=F("version") + 1)
    config.refresh_from_db()
    return config
