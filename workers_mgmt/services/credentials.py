"""Credentials of the fleet: keys, rotation, revocation, their audit trail, enrollment.

A change staff ask for (an `Actor`) is one staff change: its `StaffAction` row and the
`CredentialEvent` rows it causes, which point to it, are written in one transaction
(docs/SYSTEM_OVERVIEW.md, "Staff actions"). What a worker or the schedule causes (a key's first
use, a push delivery, an expiry, a failed authentication) is named by a plain label and points to none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils.timezone import now as clock_now

from core.audit import Actor, actor_label, staff_action_current, staff_change
from workers_mgmt.credential_cache import (
    credentials_changed,
    push_pending_absent,
    push_pending_absent_remember,
)
from workers_mgmt.crypto import (
    decrypt_secret,
    encrypt_secret,
    is_under_first_key,
    new_enrollment_token,
    new_key_id,
    new_secret,
    reencrypt,
    token_hash,
)
from workers_mgmt.models import (
    CredentialEvent,
    CredentialEventKind,
    CredentialRotation,
    CredentialState,
    DeliveryMode,
    EnrollmentToken,
    Worker,
    WorkerCredential,
)

WORKER_TYPE = "workers_mgmt.worker"


@dataclass(frozen=True)
class IssuedCredential:
    """A credential with its plain secret: shown to a person or sent to a worker once."""

    worker_id: str
    key_id: str
    # Kept out of repr() so a traceback or an error report never prints it.
    secret: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"worker_id": self.worker_id, "key_id": self.key_id, "secret": self.secret}



def worker_credential_issue(*, worker: Worker, actor: Actor | str = "system"
                            ) -> tuple[WorkerCredential, str]:
    """Replace every key of `worker` with one new current key, returning it and its secret.

    This is the blunt tool (used by the simulated fleet and by tests): all older keys are revoked at
    once. Graceful rotation that keeps a healthy worker running is `credential_rotate`.
    """
    with staff_change(actor=actor, action="credential.issue", object_type=WORKER_TYPE,
                      object_ids=[worker.pk]):
        credentials_revoke_all(worker_id=worker.pk, actor=actor, reason="replaced")
        issued = credential_add(worker=worker, state=CredentialState.CURRENT, actor=actor)
    return WorkerCredential.objects.get(key_id=issued.key_id), issued.secret


def credential_add(*, worker: Worker, state: str, actor: Actor | str, reason: str = "",
                   ip: str | None = None) -> IssuedCredential:
    """Add one key to `worker` in `state`, with its audit row (call inside the caller's transaction)."""
    secret = new_secret()
    credential = WorkerCredential.objects.create(
        key_id=new_key_id(), worker=worker, secret_encrypted=encrypt_secret(secret), state=state
    )
    credential_event_add(worker_id=worker.pk, key_id=credential.key_id, kind=CredentialEventKind.CREATED,
                         actor=actor, reason=reason or state, ip=ip)
    return IssuedCredential(worker_id=worker.id, key_id=credential.key_id, secret=secret)


def credentials_revoke_all(*, worker_id: str, actor: Actor | str, reason: str,
                           ip: str | None = None) -> list[str]:
    """Revoke every key of a worker that is not revoked yet, one audit row each; return their ids.

    Call inside the caller's transaction: the change is announced to every process with it.
    """
    credentials_changed(worker_ids=[worker_id])
    at = clock_now()
    key_ids = list(
        WorkerCredential.objects.filter(worker_id=worker_id).exclude(state=CredentialState.REVOKED)
        .values_list("key_id", flat=True)
    )
    revoked = []
    for key_id in key_ids:
        # Compare-and-swap per key: a key that a concurrent request just revoked or expired is not
        # counted (or audited) twice.
        if WorkerCredential.objects.filter(key_id=key_id).exclude(state=CredentialState.REVOKED).update(
            state=CredentialState.REVOKED, grace_until=None, updated_at=at
        ):
            credential_event_add(worker_id=worker_id, key_id=key_id, kind=CredentialEventKind.REVOKED,
                                 actor=actor, reason=reason, ip=ip, at=at)
            revoked.append(key_id)
    return revoked


def credential_touch(*, credential: WorkerCredential, at: dt.datetime) -> bool:
    """Record that a key was used, at most once a minute per key to keep the hot path light."""
    if credential.last_used_at and at - credential.last_used_at < dt.timedelta(seconds=60):
        return False
    WorkerCredential.objects.filter(key_id=credential.key_id).update(last_used_at=at)
    return True


class RotationInProgress(Exception):
    """The worker already has a pending key; finish (or emergency-rotate) that rotation first."""


class EnrollmentRefused(Exception):
    """The enrollment token is unknown, used, expired, or its worker is disabled (always generic)."""


def credential_event_add(
    *, worker_id: str, kind: str, actor: Actor | str, key_id: str = "", reason: str = "",
    ip: str | None = None, at: dt.datetime | None = None,
) -> CredentialEvent:
    """Append one audit row (never updated, never deleted; auth failures use auth_failure_record).

    Inside a staff change the row points to that change's `StaffAction`.
    """
    return CredentialEvent.objects.create(
        worker_id=worker_id[:63], key_id=key_id[:40], kind=kind, reason=reason[:60],
        actor=actor_label(actor)[:150], ip=ip, created_at=at or clock_now(),
        staff_action=staff_action_current(),
    )


def auth_failure_record(*, worker_id: str, reason: str, ip: str | None, key_id: str = "",
                        at: dt.datetime | None = None) -> None:
    """Count one failed authentication in its worker+reason+minute row (one statement).

    The worker id is whatever the caller claimed: it is stored as text (no foreign key), truncated,
    so a request naming a worker that does not exist is on record too; the per-IP failure limit
    keeps a flood of invented ids from growing the table faster than a few rows a minute.
    """
    at = at or clock_now()
    minute = at.replace(second=0, microsecond=0)
    table = CredentialEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (worker_id, key_id, kind, reason, actor, ip, minute, count, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 1, %s) "
            "ON CONFLICT (worker_id, reason, minute) WHERE kind = 'auth_failed' "
            f"DO UPDATE SET count = {table}.count + 1",
            [worker_id[:63], key_id[:40], CredentialEventKind.AUTH_FAILED, reason[:60], "worker", ip,
             minute, at],
        )


def credential_rotate(
    *, worker: Worker, actor: Actor | str, mode: str = DeliveryMode.PUSH, grace_hours: float | None = None,
    ip: str | None = None,
) -> IssuedCredential:
    """Start a rotation: add a pending key, to be pushed in a heartbeat or installed by hand.

    The first request signed with it promotes it (credential_promote). Refused with
    RotationInProgress while the worker already has a pending key; the partial unique constraint
    `one_pending_credential_per_worker` is what makes that hold under concurrency.
    """
    grace_s = int(3600 * (settings.LEADOPS_ROTATION_GRACE_HOURS if grace_hours is None else grace_hours))
    if grace_s < 0:
        raise ValueError("The grace period cannot be negative.")
    if mode not in DeliveryMode.values:
        raise ValueError(f"Unknown delivery mode {mode!r}.")
    try:
        with staff_change(actor=actor, action="credential.rotate", object_type=WORKER_TYPE,
                          object_ids=[worker.pk], detail={"mode": mode, "grace_seconds": grace_s}):
            # Every process drops its copy: the next heartbeat, wherever it lands, offers the new key.
            credentials_changed(worker_ids=[worker.pk])
            if WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).exists():
                raise RotationInProgress(f"Worker {worker.pk} already has a pending key; "
                                         "wait for it to be promoted or use an emergency rotation.")
            issued = credential_add(worker=worker, state=CredentialState.PENDING, actor=actor,
                                     reason=f"rotation:{mode}", ip=ip)
            CredentialRotation.objects.create(credential_id=issued.key_id, mode=mode, grace_seconds=grace_s)
    except IntegrityError:
        raise RotationInProgress(f"Worker {worker.pk} already has a pending key.") from None
    return issued


def credential_rotate_emergency(*, worker: Worker, actor: Actor | str, ip: str | None = None
                                ) -> IssuedCredential:
    """Revoke every key of the worker at once (pending included) and make one new current key."""
    with staff_change(actor=actor, action="credential.rotate_emergency", object_type=WORKER_TYPE,
                      object_ids=[worker.pk]):
        credentials_revoke_all(worker_id=worker.pk, actor=actor, reason="emergency", ip=ip)
        return credential_add(worker=worker, state=CredentialState.CURRENT, actor=actor,
                              reason="emergency", ip=ip)


def credential_deliver(*, credential: WorkerCredential, ip: str | None = None,
                       waiting: bool | None = None) -> IssuedCredential | None:
    """The pending key to push to the worker that signed with `credential`, or None.

    Only a request signed with the worker's current key gets it, and only for a push rotation; it
    is sent again on every such heartbeat until the worker uses it, but audited once. "None waiting"
    is remembered with the process's copy of the key, which any rotation, in any process, drops
    (credential_cache.py; docs/PERFORMANCE.md). `waiting` is what the caller already read of
    `pending_push_waiting_sql` in a statement of its own (None: not read).
    """
    if credential.state != CredentialState.CURRENT or push_pending_absent(credential.key_id):
        return None
    if waiting is False:
        push_pending_absent_remember(credential.key_id)
        return None
    pending = (
        WorkerCredential.objects.filter(worker_id=credential.worker_id, state=CredentialState.PENDING,
                                        rotation__mode=DeliveryMode.PUSH)
        .only("key_id", "secret_encrypted").first()
    )
    if pending is None:
        push_pending_absent_remember(credential.key_id)
        return None
    at = clock_now()
    with transaction.atomic():
        first = CredentialRotation.objects.filter(credential_id=pending.key_id, delivered_at__isnull=True
                                                  ).update(delivered_at=at)
        if first:
            credential_event_add(worker_id=credential.worker_id, key_id=pending.key_id,
                                 kind=CredentialEventKind.DELIVERED, actor="worker", reason="push",
                                 ip=ip, at=at)
    return IssuedCredential(worker_id=credential.worker_id, key_id=pending.key_id,
                            secret=decrypt_secret(pending.secret_encrypted))


def pending_push_waiting_sql() -> str:
    """One SQL expression, true when a push key waits for the worker (its one parameter): what
    `credential_deliver` looks for, for a statement that reads it along with its own work (a
    pull's or an exchange's liveness UPDATE, docs/PERFORMANCE.md "The fleet's exchange, stage by
    stage")."""
    return (f"EXISTS (SELECT 1 FROM {WorkerCredential._meta.db_table} pc"
            f" JOIN {CredentialRotation._meta.db_table} pr ON pr.credential_id = pc.key_id"
            f" WHERE pc.worker_id = %s AND pc.state = '{CredentialState.PENDING.value}'"
            f" AND pr.mode = '{DeliveryMode.PUSH.value}')")


def credential_promote(*, credential: WorkerCredential, ip: str | None = None) -> bool:
    """Promote a pending key on its first verified use: pending -> current, current -> previous.

    Compare-and-swap on the pending row: of two concurrent first requests exactly one changes it
    (on PostgreSQL the second waits for the first's row lock, then finds the state changed); the
    loser returns False and its request goes on, since the key is current now either way.
    """
    at = clock_now()
    with transaction.atomic():
        credentials_changed(worker_ids=[credential.worker_id])
        if not WorkerCredential.objects.filter(key_id=credential.key_id, state=CredentialState.PENDING
                                               ).update(state=CredentialState.CURRENT, updated_at=at):
            return False
        rotation = CredentialRotation.objects.filter(credential_id=credential.key_id).first()
        grace = dt.timedelta(seconds=rotation.grace_seconds if rotation else
                             int(3600 * settings.LEADOPS_ROTATION_GRACE_HOURS))
        if rotation:
            CredentialRotation.objects.filter(pk=rotation.pk).update(promoted_at=at)
        worker_id = credential.worker_id
        credential_event_add(worker_id=worker_id, key_id=credential.key_id, kind=CredentialEventKind.VERIFIED,
                             actor="worker", ip=ip, at=at)
        credential_event_add(worker_id=worker_id, key_id=credential.key_id, kind=CredentialEventKind.PROMOTED,
                             actor="worker", ip=ip, at=at)
        # A key still in the grace of an earlier rotation is retired now: at most one old key lives.
        for key_id in WorkerCredential.objects.filter(worker_id=worker_id, state=CredentialState.PREVIOUS
                                                      ).values_list("key_id", flat=True):
            if WorkerCredential.objects.filter(key_id=key_id, state=CredentialState.PREVIOUS).update(
                state=CredentialState.REVOKED, grace_until=None, updated_at=at
            ):
                credential_event_add(worker_id=worker_id, key_id=key_id, kind=CredentialEventKind.REVOKED,
                                     actor="system", reason="superseded", ip=ip, at=at)
        WorkerCredential.objects.filter(worker_id=worker_id, state=CredentialState.CURRENT).exclude(
            key_id=credential.key_id
        ).update(state=CredentialState.PREVIOUS, grace_until=at + grace, updated_at=at)
    credential.state = CredentialState.CURRENT
    return True


def credential_revoke(*, credential: WorkerCredential, actor: Actor | str, reason: str = "staff",
                      ip: str | None = None) -> bool:
    """Revoke one key at once, in every process; False when it was revoked already."""
    at = clock_now()
    with transaction.atomic():
        credentials_changed(worker_ids=[credential.worker_id])
        if not WorkerCredential.objects.filter(key_id=credential.key_id).exclude(
            state=CredentialState.REVOKED
        ).update(state=CredentialState.REVOKED, grace_until=None, updated_at=at):
            return False
        # Audited once it is known to have changed: revoking a revoked key is no staff change.
        with staff_change(actor=actor, action="credential.revoke", object_type=WORKER_TYPE,
                          object_ids=[credential.worker_id], detail={"key_id": credential.key_id}):
            credential_event_add(worker_id=credential.worker_id, key_id=credential.key_id,
                                 kind=CredentialEventKind.REVOKED, actor=actor, reason=reason, ip=ip, at=at)
    credential.state = CredentialState.REVOKED
    return True


def credentials_expire(*, now: dt.datetime | None = None) -> int:
    """Revoke previous keys whose grace has ended (the scheduled task); one audit row each."""
    at = now or clock_now()
    expired = 0
    due = WorkerCredential.objects.filter(state=CredentialState.PREVIOUS, grace_until__lt=at)
    for key_id, worker_id in due.values_list("key_id", "worker_id"):
        with transaction.atomic():
            credentials_changed(worker_ids=[worker_id])
            if WorkerCredential.objects.filter(key_id=key_id, state=CredentialState.PREVIOUS,
                                               grace_until__lt=at).update(
                state=CredentialState.REVOKED, updated_at=at
            ):
                credential_event_add(worker_id=worker_id, key_id=key_id, kind=CredentialEventKind.EXPIRED,
                                     actor="system", reason="grace_ended", at=at)
                expired += 1
    return expired


def credentials_reencrypt() -> int:
    """Re-encrypt every stored secret under the first key of LEADOPS_SECRETS_KEY; return how many changed.

    Each row is a compare-and-swap on its old ciphertext, so a key rotated at the same moment is
    never overwritten with a stale secret (the next run picks it up). The secrets themselves do not
    change, so the processes' copies stay good.
    """
    changed = 0
    for key_id, token in WorkerCredential.objects.values_list("key_id", "secret_encrypted").iterator():
        if is_under_first_key(token):
            continue
        changed += WorkerCredential.objects.filter(key_id=key_id, secret_encrypted=token).update(
            secret_encrypted=reencrypt(token)
        )
    return changed


@dataclass(frozen=True)
class IssuedEnrollment:
    """An enrollment token in plain text: shown to staff once, only its hash is stored."""

    worker_id: str
    expires_at: dt.datetime
    token: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"worker_id": self.worker_id, "enrollment_token": self.token,
                "expires_at": self.expires_at.isoformat()}


def enrollment_issue(*, worker: Worker, actor: Actor | str, hours: float | None = None,
                     ip: str | None = None) -> IssuedEnrollment:
    """A one-time token the worker exchanges for its credential (POST /api/v1/enroll)."""
    hours = settings.LEADOPS_ENROLLMENT_TTL_HOURS if hours is None else hours
    if hours <= 0:
        raise ValueError("An enrollment token must live a positive number of hours.")
    token = new_enrollment_token()
    expires_at = clock_now() + dt.timedelta(hours=hours)
    with staff_change(actor=actor, action="worker.enrollment_issue", object_type=WORKER_TYPE,
                      object_ids=[worker.pk]):
        EnrollmentToken.objects.create(token_hash=token_hash(token), worker=worker, expires_at=expires_at,
                                       created_by=actor_label(actor)[:150])
        credential_event_add(worker_id=worker.pk, kind=CredentialEventKind.ENROLLMENT_ISSUED, actor=actor,
                             reason=f"expires {expires_at.isoformat()}", ip=ip)
    return IssuedEnrollment(worker_id=worker.pk, expires_at=expires_at, token=token)


def enrollment_exchange(*, token: str, ip: str | None = None) -> IssuedCredential:
    """Spend an enrollment token once: the worker gets one new current key (older keys are revoked)."""
    at = clock_now()
    digest = token_hash(token)
    with transaction.atomic():
        row = EnrollmentToken.objects.select_related("worker").filter(token_hash=digest).first()
        # Compare-and-swap: of two concurrent exchanges of one token exactly one marks it used.
        spent = row is not None and row.worker.enabled and EnrollmentToken.objects.filter(
            pk=row.pk, used_at__isnull=True, expires_at__gt=at
        ).update(used_at=at)
        if not spent or row is None:
            raise EnrollmentRefused()
        worker = row.worker
        credentials_revoke_all(worker_id=worker.pk, actor="enrollment", reason="enrolled", ip=ip)
        issued = credential_add(worker=worker, state=CredentialState.CURRENT, actor="enrollment",
                                 reason="enrolled", ip=ip)
        credential_event_add(worker_id=worker.pk, key_id=issued.key_id, kind=CredentialEventKind.ENROLLED,
                             actor="enrollment", ip=ip, at=at)
    return issued
