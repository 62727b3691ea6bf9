"""Reads of the fleet: worker presence (who is overdue, how many are online) and key readiness."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.db.models import Min

from workers_mgmt.models import (
    CredentialEvent,
    CredentialEventKind,
    CredentialRotation,
    CredentialState,
    Worker,
    WorkerCredential,
)


def workers_overdue(*, cutoff: dt.datetime) -> list[tuple[str, dt.datetime | None]]:
    """(worker id, last seen) of enabled workers heard from once but not since `cutoff`.

    Liveness is the last signed request of any kind (`Worker.last_seen_at`), not only heartbeats.
    """
    return list(
        Worker.objects.filter(enabled=True, last_seen_at__lt=cutoff)
        .order_by("id").values_list("id", "last_seen_at")
    )


def workers_online_count(*, cutoff: dt.datetime) -> int:
    return Worker.objects.filter(enabled=True, last_seen_at__gte=cutoff).count()


# ----- readiness (docs/PRODUCTION_READINESS.md, "secrets") ---------------------------------------


def workers_enabled_without_current_key() -> list[str]:
    """Enabled workers that have no current key to sign with."""
    with_key = WorkerCredential.objects.filter(state=CredentialState.CURRENT).values("worker_id")
    return list(Worker.objects.filter(enabled=True).exclude(id__in=with_key)
                .order_by("id").values_list("id", flat=True))


def current_keys_created_before(*, cutoff: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
    """(worker id, key id, created at) of enabled workers' current keys made before `cutoff`, oldest first."""
    return list(
        WorkerCredential.objects.filter(state=CredentialState.CURRENT, worker__enabled=True,
                                        created_at__lt=cutoff)
        .order_by("created_at").values_list("worker_id", "key_id", "created_at")
    )


def oldest_current_key_created_at() -> dt.datetime | None:
    return (WorkerCredential.objects.filter(state=CredentialState.CURRENT, worker__enabled=True)
            .aggregate(oldest=Min("created_at"))["oldest"])


def rotations_stuck(*, now: dt.datetime) -> list[tuple[str, str, dt.datetime]]:
    """(worker id, key id, started) of pending keys not promoted within their rotation's grace."""
    stuck = []
    pending = (WorkerCredential.objects.filter(state=CredentialState.PENDING)
               .select_related("rotation").order_by("created_at"))
    for credential in pending:
        rotation = getattr(credential, "rotation", None)
        grace_s = rotation.grace_seconds if rotation is not None else 0
        if credential.created_at + dt.timedelta(seconds=grace_s) < now:
            stuck.append((credential.worker_id, credential.key_id, credential.created_at))
    return stuck


def rotations_missing_from_audit() -> list[str]:
    """Key ids of rotations the audit trail does not fully record (its start, and its promotion).

    The one place that decides what "the audit has every rotation" means. A rotation is always a
    staff change (admin or `rotate_worker_secret`), so its start is a CredentialEvent that points to
    its StaffAction in the one staff audit trail (docs/SYSTEM_OVERVIEW.md, "Staff actions").
    """
    created = CredentialEvent.objects.filter(kind=CredentialEventKind.CREATED,
                                             staff_action__isnull=False).values("key_id")
    promoted = CredentialEvent.objects.filter(kind=CredentialEventKind.PROMOTED).values("key_id")
    missing = set(CredentialRotation.objects.exclude(credential_id__in=created)
                  .values_list("credential_id", flat=True))
    missing |= set(CredentialRotation.objects.filter(promoted_at__isnull=False)
                   .exclude(credential_id__in=promoted).values_list("credential_id", flat=True))
    return sorted(missing)


def rotations_count(*, since: dt.datetime | None = None) -> int:
    rotations = CredentialRotation.objects.all()
    if since is not None:
        rotations = rotations.filter(created_at__gte=since)
    return rotations.count()


def credential_audit_rows(*, since: dt.datetime | None = None) -> Iterator[dict[str, Any]]:
    """The credential audit trail as plain rows, oldest first: never any secret material."""
    events = CredentialEvent.objects.order_by("created_at", "id")
    if since is not None:
        events = events.filter(created_at__gte=since)
    fields = ("id", "created_at", "worker_id", "key_id", "kind", "reason", "actor", "count")
    for row in events.values(*fields).iterator(chunk_size=2000):
        yield {**row, "created_at": row["created_at"].isoformat()}


def enabled_worker_channels(*, online_cutoff: dt.datetime) -> dict[str, dict[str, Any]]:
    """Per channel of enabled workers: how many, and the versions its online workers report."""
    channels: dict[str, dict[str, Any]] = {}
    rows = Worker.objects.filter(enabled=True).values_list("channel", "reported_version", "last_seen_at")
    for channel, version, heartbeat in rows:
        entry = channels.setdefault(channel, {"workers": 0, "online_versions": Counter()})
        entry["workers"] += 1
        if heartbeat is not None and heartbeat >= online_cutoff:
            entry["online_versions"][version or "(unknown)"] += 1
    return channels
