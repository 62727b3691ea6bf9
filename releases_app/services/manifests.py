"""Channels and their signed manifests (docs/RELEASES.md, "Manifests")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, actor_label, staff_change
from releases_app.models import (
    Channel,
    Release,
    ReleaseAuditAction,
    Rollout,
    RolloutState,
    WorkerPin,
    channel_name_validator,
)
from releases_app.services.base import MANIFEST_SCHEMA, ReleaseRefused, release_audit
from releases_app.signing import sign_envelope

CHANNEL_TYPE = "releases_app.channel"


def channel_get_or_create(*, name: str, actor: str) -> Channel:
    try:
        channel_name_validator(name)
    except ValidationError:
        raise ReleaseRefused(f"invalid channel name {name[:50]!r}") from None
    channel = Channel.objects.select_related("current", "previous").filter(name=name).first()
    if channel is not None:
        return channel
    try:
        with transaction.atomic():
            channel = Channel.objects.create(name=name)
            release_audit(action=ReleaseAuditAction.CHANNEL_CREATED, actor=actor, channel=name)
    except IntegrityError:
        channel = Channel.objects.get(name=name)
    return channel


def channel_locked(name: str) -> Channel:
    # `of=("self",)`: lock the channel row only (PostgreSQL cannot lock the nullable side of the joins).
    channel = (Channel.objects.select_for_update(of=("self",)).select_related("current", "previous")
               .filter(name=name).first())
    if channel is None:
        raise ReleaseRefused(f"no channel {name!r}")
    return channel


def iso_utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_download_path(version: str) -> str:
    return f"/api/v1/releases/{version}/download"


def release_entry(release: Release) -> dict[str, Any]:
    """How a manifest names a release: only ASCII strings and integers, so Node encodes it alike."""
    entry: dict[str, Any] = {"version": release.version, "url": release_download_path(release.version),
                             "sha256": release.sha256, "size": release.size}
    for key, value in (("node", release.node_version), ("chromium", release.chromium_version),
                       ("min_agent", release.min_agent_version), ("entrypoint", release.entrypoint)):
        if value and value.isascii():
            entry[key] = value
    return entry


def active_rollout(channel: Channel) -> Rollout | None:
    return Rollout.objects.active().filter(channel=channel).first()


def manifest_sign(*, channel: Channel, actor: str, reason: str) -> Channel:
    """Sign the channel's manifest again with sequence + 1; call inside the transaction that locked it."""
    now = timezone.now()
    rollout = active_rollout(channel)
    pinned = (
        WorkerPin.objects.filter(worker__channel=channel.name).select_related("release")
        .order_by("release__version").distinct()
    )
    pinned_entries = {pin.release.version: release_entry(pin.release) for pin in pinned}
    sequence = channel.sequence + 1
    expires = now + dt.timedelta(hours=channel.manifest_ttl_hours)
    signed = {
        "schema": MANIFEST_SCHEMA,
        "channel": channel.name,
        "sequence": sequence,
        "issued_at": iso_utc(now),
        "expires_at": iso_utc(expires),
        "release": release_entry(channel.current) if channel.current else None,
        "previous": release_entry(channel.previous) if channel.previous else None,
        "rollout": (
            {"id": rollout.pk, "step": rollout.step_index, "state": rollout.state,
             "paused": rollout.state != RolloutState.RUNNING}
            if rollout else None
        ),
        "pinned": [pinned_entries[version] for version in sorted(pinned_entries)],
    }
    envelope = sign_envelope(signed)
    Channel.objects.filter(pk=channel.pk).update(
        sequence=sequence, manifest=envelope, manifest_expires_at=expires, updated_at=now)
    channel.sequence, channel.manifest, channel.manifest_expires_at = sequence, envelope, expires
    release_audit(action=ReleaseAuditAction.MANIFEST_SIGNED, actor=actor, channel=channel.name,
                  version=channel.current.version if channel.current else "",
                  detail={"sequence": sequence, "reason": reason,
                   "keyids": [entry["keyid"] for entry in envelope["signatures"]]},
                  to_state="manifest_signed")
    return channel


def channel_manifest_sign(*, channel_name: str, actor: Actor | str, reason: str = "manual") -> Channel:
    with staff_change(actor=actor, action="release.manifest_sign", object_type=CHANNEL_TYPE,
                      object_ids=[channel_name], detail={"reason": reason}):
        actor = actor_label(actor)
        channel = channel_locked(channel_name)
        return manifest_sign(channel=channel, actor=actor, reason=reason)


def channel_manifest_ensure(*, channel: Channel) -> dict[str, Any]:
    """The channel's signed manifest, signing it first when it was never signed or has expired."""
    now = timezone.now()
    if channel.manifest and channel.manifest_expires_at and channel.manifest_expires_at > now:
        return channel.manifest
    with transaction.atomic():
        locked = channel_locked(channel.name)
        if not (locked.manifest and locked.manifest_expires_at and locked.manifest_expires_at > now):
            locked = manifest_sign(channel=locked, actor="system", reason="missing or expired")
    assert locked.manifest is not None  # signed just above when it was missing
    return dict(locked.manifest)


def manifests_refresh() -> list[str]:
    """Re-sign every manifest past half its life (the schedule keeps workers from seeing one lapse)."""
    now = timezone.now()
    refreshed = []
    for channel in Channel.objects.exclude(manifest__isnull=True).order_by("name"):
        if channel.manifest_expires_at is None:
            continue
        half_life = dt.timedelta(hours=channel.manifest_ttl_hours) / 2
        if channel.manifest_expires_at - now <= half_life:
            channel_manifest_sign(channel_name=channel.name, actor="system", reason="expiry refresh")
            refreshed.append(channel.name)
    return refreshed
