"""Every write of releases, channels, rollouts and pins (docs/RELEASES.md tells the model).

Each state change is one transaction that locks the channel row (on SQLite every transaction takes
the write lock at BEGIN, so the same holds there), writes its `ReleaseAuditEvent` and publishes a
`rollout.changed` monitor event on commit. A manifest is re-signed, with a higher sequence, in the
same transaction as the change that alters what it says.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from core import events
from queueing.selectors import attempt_outcomes_since
from releases_app.artifacts import artifact_self_test
from releases_app.models import (
    ACTIVE_ROLLOUT_STATES,
    Channel,
    Release,
    ReleaseAuditAction,
    ReleaseAuditEvent,
    ReleaseState,
    Rollout,
    RolloutState,
    RolloutTarget,
    TargetReason,
    UpdateStage,
    WorkerPin,
    WorkerReleaseStatus,
    channel_name_validator,
    version_validator,
)
from releases_app.signing import sign_envelope
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_config_get

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = 1
DEFAULT_CHANNELS = ("stable", "beta", "canary")
DEFAULT_HOLD_S = 1800
# Health-gate thresholds (docs/RELEASES.md, "Health gates"); a rollout may override any of them.
DEFAULT_GATES: dict[str, Any] = {
    "max_error_rate": 0.02,          # the floor of the allowed error rate
    "error_rate_factor": 1.5,        # ... or this times the previous release's rate, if higher
    "min_attempts": 20,              # fewer finished attempts than this: too little data -> pause
    "heartbeat_factor": 2.0,         # a heartbeat older than this times its interval: failed
    "baseline_hours": 24,            # the previous release's rate is measured over this window
}


class ReleaseRefused(Exception):
    """A release, channel or rollout change that cannot be made; the message says why."""


# --- audit and events ---------------------------------------------------------------------------


def _audit(*, action: str, actor: str, channel: str = "", version: str = "", rollout: Rollout | None = None,
           detail: dict[str, Any] | None = None, from_state: str = "", to_state: str = "") -> None:
    ReleaseAuditEvent.objects.create(
        action=action, actor=actor[:150], channel=channel, version=version,
        rollout_id_ref=rollout.pk if rollout is not None else None, detail=detail or {},
        created_at=timezone.now(),
    )
    events.publish("rollout.changed", channel=channel, version=version, from_state=from_state,
                   to_state=to_state or action)


# --- releases -------------------------------------------------------------------------------------


def _artifact_storage_name(version: str, filename: str) -> str:
    base = os.path.basename(filename.replace("\\", "/")) or "artifact"
    suffix = ".zip" if base.lower().endswith(".zip") else ".tar.gz"
    return f"releases/{version}/worker-{version}{suffix}"


def release_publish(
    *, version: str, fileobj: IO[bytes], filename: str, notes: str = "", min_agent_version: str = "",
    actor: str,
) -> Release:
    """Store an artifact through the storage API, record its size and SHA-256, and self-test it."""
    try:
        version_validator(version)
    except ValidationError as exc:
        raise ReleaseRefused(f"invalid version {version[:70]!r}: {exc.messages[0]}") from None
    if min_agent_version:
        try:
            version_validator(min_agent_version)
        except ValidationError:
            raise ReleaseRefused("invalid minimum agent version") from None
    limit = settings.LEADOPS_MAX_RELEASE_BYTES
    # Hash and measure once, into a temporary copy, so the bytes hashed are the bytes stored, and an
    # oversized upload is refused before anything reaches the storage.
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as spool:
        while chunk := fileobj.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise ReleaseRefused(f"artifact is larger than LEADOPS_MAX_RELEASE_BYTES ({limit} bytes)")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise ReleaseRefused("artifact is empty")
        spool.seek(0)
        if Release.objects.filter(version=version).exists():
            raise ReleaseRefused(f"version {version} already exists")
        name = _artifact_storage_name(version, filename)
        # Never delete or overwrite: when the name is taken (a crashed earlier upload, a concurrent
        # one), the storage picks a free name and the release records whichever it got.
        stored_name = default_storage.save(name, File(spool, name=name))
    try:
        with transaction.atomic():
            release = Release.objects.create(
                version=version, artifact_name=stored_name, sha256=digest.hexdigest(), size=size,
                notes=notes, min_agent_version=min_agent_version, created_by=actor[:150],
                state=ReleaseState.UPLOADED,
            )
            _audit(action=ReleaseAuditAction.RELEASE_UPLOADED, actor=actor, version=version,
                   detail={"sha256": release.sha256, "size": size}, to_state=ReleaseState.UPLOADED)
    except IntegrityError:
        raise ReleaseRefused(f"version {version} already exists") from None
    return release_self_test(release=release, actor=actor)


def release_self_test(*, release: Release, actor: str) -> Release:
    """uploaded -> self_testing -> ready or failed, with the report kept on the release."""
    moved = Release.objects.filter(pk=release.pk, state=ReleaseState.UPLOADED).update(
        state=ReleaseState.SELF_TESTING, updated_at=timezone.now())
    if not moved:
        raise ReleaseRefused(f"release {release.version} is not waiting for its self-test")
    try:
        with default_storage.open(release.artifact_name, "rb") as stored:
            # Read the stored copy, not the upload: what workers will download is what is tested.
            digest = hashlib.sha256()
            while chunk := stored.read(1024 * 1024):
                digest.update(chunk)
            stored.seek(0)
            report = artifact_self_test(fileobj=stored, expected_version=release.version,
                                        max_unpacked_bytes=settings.LEADOPS_MAX_RELEASE_UNPACKED_BYTES)
        if digest.hexdigest() != release.sha256:
            report.fail("stored artifact does not match the uploaded SHA-256")
    except OSError as exc:
        from releases_app.artifacts import SelfTestReport

        report = SelfTestReport()
        report.fail(f"artifact unreadable from storage: {type(exc).__name__}")
    state = ReleaseState.READY if report.ok else ReleaseState.FAILED
    manifest = report.manifest
    with transaction.atomic():
        Release.objects.filter(pk=release.pk, state=ReleaseState.SELF_TESTING).update(
            state=state, self_test_report=report.as_dict(), archive_format=report.format,
            entrypoint=manifest.get("entrypoint", "")[:255], node_version=manifest.get("node", "")[:40],
            chromium_version=manifest.get("chromium", "")[:40], updated_at=timezone.now(),
        )
        _audit(action=ReleaseAuditAction.RELEASE_SELF_TESTED, actor=actor, version=release.version,
               detail={"ok": report.ok, "errors": report.errors}, from_state=ReleaseState.SELF_TESTING,
               to_state=state)
    release.refresh_from_db()
    return release


def release_revoke(*, release: Release, actor: str) -> Release:
    """ready -> revoked; refused while a channel, an active rollout or a pin still hands it out."""
    with transaction.atomic():
        in_use = (
            Channel.objects.select_for_update().filter(current=release).exists()
            or Channel.objects.filter(previous=release).exists()
            or Rollout.objects.filter(release=release, state__in=ACTIVE_ROLLOUT_STATES).exists()
            or WorkerPin.objects.filter(release=release).exists()
        )
        if in_use:
            raise ReleaseRefused(f"release {release.version} is still in use by a channel, rollout or pin")
        before = release.state
        moved = Release.objects.filter(pk=release.pk).exclude(state=ReleaseState.REVOKED).update(
            state=ReleaseState.REVOKED, updated_at=timezone.now())
        if moved:
            _audit(action=ReleaseAuditAction.RELEASE_REVOKED, actor=actor, version=release.version,
                   from_state=before, to_state=ReleaseState.REVOKED)
    release.refresh_from_db()
    return release


# --- channels and manifests -----------------------------------------------------------------------


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
            _audit(action=ReleaseAuditAction.CHANNEL_CREATED, actor=actor, channel=name)
    except IntegrityError:
        channel = Channel.objects.get(name=name)
    return channel


def _lock_channel(name: str) -> Channel:
    # `of=("self",)`: lock the channel row only (PostgreSQL cannot lock the nullable side of the joins).
    channel = (Channel.objects.select_for_update(of=("self",)).select_related("current", "previous")
               .filter(name=name).first())
    if channel is None:
        raise ReleaseRefused(f"no channel {name!r}")
    return channel


def _iso(moment: dt.datetime) -> str:
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


def _active_rollout(channel: Channel) -> Rollout | None:
    return Rollout.objects.filter(channel=channel, state__in=ACTIVE_ROLLOUT_STATES).first()


def _manifest_sign(*, channel: Channel, actor: str, reason: str) -> Channel:
    """Sign the channel's manifest again with sequence + 1; call inside the transaction that locked it."""
    now = timezone.now()
    rollout = _active_rollout(channel)
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
        "issued_at": _iso(now),
        "expires_at": _iso(expires),
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
    _audit(action=ReleaseAuditAction.MANIFEST_SIGNED, actor=actor, channel=channel.name,
           version=channel.current.version if channel.current else "",
           detail={"sequence": sequence, "reason": reason,
                   "keyids": [entry["keyid"] for entry in envelope["signatures"]]},
           to_state="manifest_signed")
    return channel


def channel_manifest_sign(*, channel_name: str, actor: str, reason: str = "manual") -> Channel:
    with transaction.atomic():
        channel = _lock_channel(channel_name)
        return _manifest_sign(channel=channel, actor=actor, reason=reason)


def channel_manifest_ensure(*, channel: Channel) -> dict[str, Any]:
    """The channel's signed manifest, signing it first when it was never signed or has expired."""
    now = timezone.now()
    if channel.manifest and channel.manifest_expires_at and channel.manifest_expires_at > now:
        return channel.manifest
    with transaction.atomic():
        locked = _lock_channel(channel.name)
        if not (locked.manifest and locked.manifest_expires_at and locked.manifest_expires_at > now):
            locked = _manifest_sign(channel=locked, actor="system", reason="missing or expired")
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


# --- rollouts -------------------------------------------------------------------------------------


def default_steps(*, canary: list[str]) -> list[dict[str, Any]]:
    first: dict[str, Any] = (
        {"canary": canary, "hold_s": DEFAULT_HOLD_S, "approve": True} if canary
        else {"count": 1, "hold_s": DEFAULT_HOLD_S}
    )
    return [first, {"percent": 50, "hold_s": DEFAULT_HOLD_S}, {"percent": 100, "hold_s": DEFAULT_HOLD_S}]


def steps_validate(steps: Any) -> list[dict[str, Any]]:
    """Check a step list: each has one of canary / count / percent, an optional hold_s and approve."""
    if not isinstance(steps, list) or not steps or len(steps) > 20:
        raise ReleaseRefused("steps must be a list of 1 to 20 steps")
    clean = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise ReleaseRefused(f"step {index} is not an object")
        unknown = set(step) - {"canary", "count", "percent", "hold_s", "approve"}
        if unknown:
            raise ReleaseRefused(f"step {index}: unknown keys {sorted(unknown)}")
        kinds = [key for key in ("canary", "count", "percent") if key in step]
        if len(kinds) != 1:
            raise ReleaseRefused(f"step {index} needs exactly one of canary, count, percent")
        out: dict[str, Any] = {}
        if "canary" in step:
            names = step["canary"]
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise ReleaseRefused(f"step {index}: canary must be a list of worker ids")
            out["canary"] = list(dict.fromkeys(names))
        if "count" in step:
            if type(step["count"]) is not int or step["count"] < 0:
                raise ReleaseRefused(f"step {index}: count must be a whole number >= 0")
            out["count"] = step["count"]
        if "percent" in step:
            if type(step["percent"]) not in (int, float) or not 0 <= step["percent"] <= 100:
                raise ReleaseRefused(f"step {index}: percent must be between 0 and 100")
            out["percent"] = step["percent"]
        hold = step.get("hold_s", 0)
        if type(hold) is not int or hold < 0:
            raise ReleaseRefused(f"step {index}: hold_s must be whole seconds >= 0")
        out["hold_s"] = hold
        out["approve"] = bool(step.get("approve", False))
        clean.append(out)
    return clean


def worker_rank_key(salt: str, worker_id: str) -> str:
    """A worker's place in a rollout: its SHA-256(salt + worker id), lowest first."""
    return hashlib.sha256(f"{salt}{worker_id}".encode()).hexdigest()


def _step_targets_apply(*, rollout: Rollout, step_index: int) -> int:
    """Add the workers step `step_index` reaches; earlier targets stay, so steps only ever add."""
    steps = rollout.steps
    canaries = [name for step in steps[: step_index + 1] for name in step.get("canary", [])]
    # Pinned workers are left out of the ranking: a pin outranks the rollout, so reaching them would
    # only leave the gates waiting for installs that never come.
    fleet = list(Worker.objects.filter(channel=rollout.channel.name, enabled=True, release_pin__isnull=True)
                 .values_list("id", flat=True))
    step = steps[step_index]
    if "count" in step:
        wanted = step["count"]
    elif "percent" in step:
        wanted = math.ceil(len(fleet) * step["percent"] / 100)
    else:
        wanted = 0
    existing = set(RolloutTarget.objects.filter(rollout=rollout).values_list("worker_id", flat=True))
    new_rows = [
        RolloutTarget(rollout=rollout, worker_id=name, step_index=step_index, reason=TargetReason.CANARY)
        for name in dict.fromkeys(canaries) if name not in existing
    ]
    taken = existing | {row.worker_id for row in new_rows}
    ranking = sorted((name for name in fleet if name not in taken),
                     key=lambda name: worker_rank_key(rollout.salt, name))
    fill = max(0, wanted - len(taken))
    new_rows += [
        RolloutTarget(rollout=rollout, worker_id=name, step_index=step_index, reason=TargetReason.COHORT)
        for name in ranking[:fill]
    ]
    RolloutTarget.objects.bulk_create(new_rows, ignore_conflicts=True)
    return len(new_rows)


def rollout_start(
    *, version: str, channel_name: str, canary: list[str] | None = None,
    steps: list[dict[str, Any]] | None = None, gates: dict[str, Any] | None = None, actor: str,
) -> Rollout:
    """Make `version` the channel's release for the workers each step reaches; the rest keep the old one."""
    canary = list(dict.fromkeys(canary or []))
    release = Release.objects.filter(version=version).first()
    if release is None:
        raise ReleaseRefused(f"no release {version}")
    if release.state != ReleaseState.READY:
        raise ReleaseRefused(f"release {version} is {release.state}, not ready")
    steps = steps_validate(steps if steps is not None else default_steps(canary=canary))
    if canary and not any("canary" in step for step in steps):
        steps[0]["canary"] = canary
    named = {name for step in steps for name in step.get("canary", [])}
    gates = {**DEFAULT_GATES, **(gates or {})}
    channel_get_or_create(name=channel_name, actor=actor)
    with transaction.atomic():
        channel = _lock_channel(channel_name)
        if named:
            found = dict(Worker.objects.filter(id__in=named).values_list("id", "channel"))
            missing = sorted(named - set(found))
            if missing:
                raise ReleaseRefused(f"unknown canary workers: {', '.join(missing)}")
            elsewhere = sorted(name for name, ch in found.items() if ch != channel_name)
            if elsewhere:
                raise ReleaseRefused(f"canary workers not on channel {channel_name}: {', '.join(elsewhere)}")
        if _active_rollout(channel) is not None:
            raise ReleaseRefused(f"channel {channel_name} already has a rollout in progress")
        if channel.current_id == release.pk:
            raise ReleaseRefused(f"{version} is already the release of channel {channel_name}")
        now = timezone.now()
        rollout = Rollout.objects.create(
            channel=channel, release=release, from_release=channel.current, salt=secrets.token_hex(16),
            steps=steps, gates=gates, step_index=0, step_started_at=now, state=RolloutState.RUNNING,
            started_by=actor[:150],
        )
        added = _step_targets_apply(rollout=rollout, step_index=0)
        Channel.objects.filter(pk=channel.pk).update(current=release, previous=channel.current,
                                                     updated_at=now)
        channel.previous, channel.current = channel.current, release
        _audit(action=ReleaseAuditAction.ROLLOUT_STARTED, actor=actor, channel=channel_name, version=version,
               rollout=rollout,
               detail={"steps": steps, "gates": gates, "targets_added": added,
                       "from_version": channel.previous.version if channel.previous else None},
               to_state=RolloutState.RUNNING)
        _manifest_sign(channel=channel, actor=actor, reason="rollout started")
    return rollout


def _locked_active_rollout(channel_name: str) -> tuple[Channel, Rollout]:
    channel = _lock_channel(channel_name)
    rollout = Rollout.objects.select_for_update(of=("self",)).select_related("release", "channel").filter(
        channel=channel, state__in=ACTIVE_ROLLOUT_STATES).first()
    if rollout is None:
        raise ReleaseRefused(f"channel {channel_name} has no rollout in progress")
    return channel, rollout


def _rollout_move(*, rollout: Rollout, to_state: str, reason: str, **changes: Any) -> None:
    """Compare-and-swap the rollout's state: only from the state this transaction read."""
    now = timezone.now()
    moved = Rollout.objects.filter(pk=rollout.pk, state=rollout.state).update(
        state=to_state, state_reason=reason[:300], updated_at=now, **changes)
    if not moved:
        raise ReleaseRefused("the rollout changed meanwhile; try again")
    rollout.state = to_state
    rollout.state_reason = reason[:300]
    for name, value in changes.items():
        setattr(rollout, name, value)


def _advance(*, channel: Channel, rollout: Rollout, actor: str, reason: str) -> Rollout:
    """Next step, or done after the last one; then re-sign (the manifest names the step)."""
    before = rollout.state
    now = timezone.now()
    if rollout.step_index + 1 >= len(rollout.steps):
        _rollout_move(rollout=rollout, to_state=RolloutState.DONE, reason=reason, finished_at=now)
        _audit(action=ReleaseAuditAction.ROLLOUT_DONE, actor=actor, channel=channel.name,
               version=rollout.release.version, rollout=rollout, detail={"reason": reason},
               from_state=before, to_state=RolloutState.DONE)
    else:
        step_index = rollout.step_index + 1
        _rollout_move(rollout=rollout, to_state=RolloutState.RUNNING, reason=reason, step_index=step_index,
                      step_started_at=now)
        added = _step_targets_apply(rollout=rollout, step_index=step_index)
        _audit(action=ReleaseAuditAction.ROLLOUT_STEP, actor=actor, channel=channel.name,
               version=rollout.release.version, rollout=rollout,
               detail={"step": step_index, "targets_added": added, "reason": reason},
               from_state=before, to_state=RolloutState.RUNNING)
    _manifest_sign(channel=channel, actor=actor, reason=f"rollout {rollout.state}")
    return rollout


def rollout_promote(*, channel_name: str, actor: str) -> Rollout:
    """Promote now: skip the rest of the hold and the gates, go to the next step (or finish)."""
    with transaction.atomic():
        channel, rollout = _locked_active_rollout(channel_name)
        return _advance(channel=channel, rollout=rollout, actor=actor, reason=f"promoted by {actor}")


def rollout_pause(*, channel_name: str, actor: str, reason: str = "") -> Rollout:
    with transaction.atomic():
        channel, rollout = _locked_active_rollout(channel_name)
        if rollout.state == RolloutState.PAUSED:
            return rollout
        before = rollout.state
        _rollout_move(rollout=rollout, to_state=RolloutState.PAUSED, reason=reason or f"paused by {actor}")
        _audit(action=ReleaseAuditAction.ROLLOUT_PAUSED, actor=actor, channel=channel.name,
               version=rollout.release.version, rollout=rollout, detail={"reason": reason},
               from_state=before, to_state=RolloutState.PAUSED)
        _manifest_sign(channel=channel, actor=actor, reason="rollout paused")
    return rollout


def rollout_resume(*, channel_name: str, actor: str) -> Rollout:
    """Paused -> running; the step's hold starts again so the gates see fresh data."""
    with transaction.atomic():
        channel, rollout = _locked_active_rollout(channel_name)
        if rollout.state != RolloutState.PAUSED:
            raise ReleaseRefused(f"the rollout on {channel_name} is {rollout.state}, not paused")
        _rollout_move(rollout=rollout, to_state=RolloutState.RUNNING, reason=f"resumed by {actor}",
                      step_started_at=timezone.now())
        _audit(action=ReleaseAuditAction.ROLLOUT_RESUMED, actor=actor, channel=channel.name,
               version=rollout.release.version, rollout=rollout, from_state=RolloutState.PAUSED,
               to_state=RolloutState.RUNNING)
        _manifest_sign(channel=channel, actor=actor, reason="rollout resumed")
    return rollout


def _revert_channel(*, channel: Channel, to_release: Release | None) -> None:
    Channel.objects.filter(pk=channel.pk).update(current=to_release, previous=None, updated_at=timezone.now())
    channel.current, channel.previous = to_release, None


def rollout_abort(*, channel_name: str, actor: str, reason: str = "",
                  to_state: str = RolloutState.ABORTED) -> Rollout:
    """Stop the rollout and put every worker back on the release the channel had before it."""
    with transaction.atomic():
        channel, rollout = _locked_active_rollout(channel_name)
        before = rollout.state
        reason = reason or f"{to_state} by {actor}"
        _rollout_move(rollout=rollout, to_state=to_state, reason=reason, finished_at=timezone.now())
        _revert_channel(channel=channel, to_release=rollout.from_release)
        action = ReleaseAuditAction.ROLLED_BACK if to_state == RolloutState.ROLLED_BACK \
            else ReleaseAuditAction.ROLLOUT_ABORTED
        _audit(action=action, actor=actor, channel=channel.name, version=rollout.release.version,
               rollout=rollout,
               detail={"reason": reason, "back_to": channel.current.version if channel.current else None},
               from_state=before, to_state=to_state)
        _manifest_sign(channel=channel, actor=actor, reason=to_state)
    return rollout


def channel_rollback(*, channel_name: str, actor: str, reason: str = "") -> Channel:
    """Channel current = previous, sequence + 1, manifest re-signed; stops a rollout in progress."""
    with transaction.atomic():
        channel = _lock_channel(channel_name)
        if _active_rollout(channel) is not None:
            rollout_abort(channel_name=channel_name, actor=actor, reason=reason or f"rolled back by {actor}",
                          to_state=RolloutState.ROLLED_BACK)
            return Channel.objects.get(pk=channel.pk)
        if channel.previous is None:
            raise ReleaseRefused(f"channel {channel_name} has no previous release to go back to")
        rolled = channel.current
        _revert_channel(channel=channel, to_release=channel.previous)
        last = Rollout.objects.filter(channel=channel, release=rolled, state=RolloutState.DONE).first()
        if last is not None:
            _rollout_move(rollout=last, to_state=RolloutState.ROLLED_BACK,
                          reason=reason or f"rolled back by {actor}")
        _audit(action=ReleaseAuditAction.ROLLED_BACK, actor=actor, channel=channel.name,
               version=rolled.version if rolled else "", rollout=last,
               detail={"reason": reason, "back_to": channel.current.version if channel.current else None},
               from_state="current", to_state=RolloutState.ROLLED_BACK)
        _manifest_sign(channel=channel, actor=actor, reason="rolled back")
    return channel


# --- pins -----------------------------------------------------------------------------------------


def worker_pin_set(*, worker: Worker, version: str, reason: str = "", expires_at: dt.datetime | None = None,
                   actor: str) -> WorkerPin:
    release = Release.objects.filter(version=version, state=ReleaseState.READY).first()
    if release is None:
        raise ReleaseRefused(f"no ready release {version}")
    channel_get_or_create(name=worker.channel, actor=actor)
    with transaction.atomic():
        channel = _lock_channel(worker.channel)
        pin, _ = WorkerPin.objects.update_or_create(
            worker=worker, defaults={"release": release, "reason": reason[:200], "expires_at": expires_at,
                                     "created_by": actor[:150]})
        _audit(action=ReleaseAuditAction.PIN_SET, actor=actor, channel=channel.name, version=version,
               detail={"worker_id": worker.pk, "reason": reason}, to_state="pinned")
        _manifest_sign(channel=channel, actor=actor, reason="pin set")
    return pin


def worker_pin_clear(*, worker: Worker, actor: str) -> bool:
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(name=worker.channel).first()
        pin = WorkerPin.objects.select_related("release").filter(worker=worker).first()
        if pin is None:
            return False
        version = pin.release.version
        pin.delete()
        _audit(action=ReleaseAuditAction.PIN_CLEARED, actor=actor, channel=worker.channel, version=version,
               detail={"worker_id": worker.pk}, to_state="unpinned")
        if channel is not None:
            _manifest_sign(channel=channel, actor=actor, reason="pin cleared")
    return True


# --- worker reports ---------------------------------------------------------------------------------


def update_report_record(*, worker: Worker, version: str, stage: str, ok: bool,
                         details: dict[str, Any] | None) -> WorkerReleaseStatus:
    """Keep the latest of each stage one worker reported for one version (one row per pair)."""
    now = timezone.now()
    changes: dict[str, Any] = {"last_stage": stage, "last_ok": ok, "last_details": details or {},
                               "updated_at": now}
    if stage == UpdateStage.DOWNLOADED:
        changes["downloaded_at"] = now
    elif stage == UpdateStage.INSTALLED:
        changes.update(installed_at=now, install_ok=ok)
    elif stage == UpdateStage.SELF_TEST:
        changes["self_test_ok"] = ok
    elif stage == UpdateStage.ROLLED_BACK:
        changes["rolled_back_at"] = now
    with transaction.atomic():
        status, _ = WorkerReleaseStatus.objects.select_for_update().update_or_create(
            worker_id=worker.pk, version=version, defaults=changes)
    return status


# --- health gates -----------------------------------------------------------------------------------


class GateOutcome:
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass
class GateResult:
    outcome: str
    checks: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "checks": self.checks, "reasons": self.reasons}


def _rate(outcomes: Iterable[dict[str, int]]) -> tuple[int, int]:
    done = failed = 0
    for row in outcomes:
        done += row["done"]
        failed += row["failed"]
    return failed, done + failed


def rollout_gate_check(*, rollout: Rollout) -> GateResult:
    """Judge the workers the rollout has reached (docs/RELEASES.md, "Health gates"); writes nothing."""
    gates = {**DEFAULT_GATES, **(rollout.gates or {})}
    now = timezone.now()
    version = rollout.release.version
    targets = list(RolloutTarget.objects.filter(rollout=rollout).values_list("worker_id", flat=True))
    statuses = {s.worker_id: s for s in
                WorkerReleaseStatus.objects.filter(version=version, worker_id__in=targets)}
    workers = {w.id: w for w in Worker.objects.filter(id__in=targets)}
    fails: list[str] = []
    unknown: list[str] = []

    failed_install = sorted(w for w, s in statuses.items() if s.failed)
    not_installed = sorted(w for w in targets if w not in statuses or not statuses[w].install_ok)
    not_installed = [w for w in not_installed if w not in failed_install]
    if failed_install:
        fails.append(f"install or self-test failed on {', '.join(failed_install)}")
    if not_installed:
        unknown.append(f"not installed yet on {', '.join(not_installed)}")

    interval = worker_config_get().heartbeat_interval_s
    late_after = dt.timedelta(seconds=interval * gates["heartbeat_factor"])
    def heard_late(worker: Worker) -> bool:
        return worker.last_heartbeat_at is None or now - worker.last_heartbeat_at > late_after

    silent = sorted(w for w in targets if w in workers and heard_late(workers[w]))
    if silent:
        fails.append(f"heartbeat late from {', '.join(silent)}")
    bad_self_test = sorted(
        w for w, worker in workers.items()
        if isinstance(worker.last_self_test, dict) and worker.last_self_test.get("ok") is False
        and worker.last_self_test.get("version", version) == version
    )
    if bad_self_test:
        fails.append(f"heartbeat self-test failing on {', '.join(bad_self_test)}")

    installed = {w: s.installed_at for w, s in statuses.items() if s.install_ok and s.installed_at}
    new_failed, new_total = _rate(attempt_outcomes_since(since_by_worker=installed).values())
    baseline_since = rollout.created_at - dt.timedelta(hours=gates["baseline_hours"])
    others = (Worker.objects.filter(channel=rollout.channel.name).exclude(id__in=targets)
              .values_list("id", flat=True))
    old_failed, old_total = _rate(
        attempt_outcomes_since(since_by_worker=dict.fromkeys(others, baseline_since)).values())
    old_rate = old_failed / old_total if old_total else 0.0
    allowed = max(gates["max_error_rate"], gates["error_rate_factor"] * old_rate)
    new_rate = new_failed / new_total if new_total else None
    if new_total < gates["min_attempts"]:
        unknown.append(f"only {new_total} finished attempts on {version} (need {gates['min_attempts']})")
    elif new_rate is not None and new_rate > allowed:
        fails.append(f"job error rate {new_rate:.1%} above {allowed:.1%}")
    checks = {
        "targets": len(targets), "installed": len(installed), "failed_installs": failed_install,
        "silent": silent, "error_rate": new_rate, "attempts": new_total, "previous_error_rate": old_rate,
        "previous_attempts": old_total, "allowed_error_rate": allowed, "evaluated_at": _iso(now),
    }
    if fails:
        return GateResult(GateOutcome.FAIL, checks, fails + unknown)
    if unknown:
        return GateResult(GateOutcome.INCONCLUSIVE, checks, unknown)
    return GateResult(GateOutcome.PASS, checks, [])


def rollout_gate_evaluate(*, rollout_id: int) -> GateResult | None:
    """After the step's hold: pass -> next step (or wait for approval); fail -> roll back; else pause."""
    rollout = Rollout.objects.select_related("release", "channel").filter(
        pk=rollout_id, state=RolloutState.RUNNING).first()
    if rollout is None:
        return None
    step = rollout.steps[rollout.step_index]
    if timezone.now() < rollout.step_started_at + dt.timedelta(seconds=step.get("hold_s", 0)):
        return None
    result = rollout_gate_check(rollout=rollout)
    channel_name = rollout.channel.name
    with transaction.atomic():
        channel, locked = _locked_active_rollout(channel_name)
        moved = locked.pk != rollout.pk or locked.state != RolloutState.RUNNING
        if moved or locked.step_index != rollout.step_index:
            return None  # someone else moved it meanwhile
        Rollout.objects.filter(pk=locked.pk).update(last_gate_result=result.as_dict())
        _audit(action=ReleaseAuditAction.GATE_EVALUATED, actor="system", channel=channel_name,
               version=locked.release.version, rollout=locked,
               detail={"step": locked.step_index, **result.as_dict()}, from_state=locked.state,
               to_state=f"gate_{result.outcome}")
        reason = "; ".join(result.reasons)
        if result.outcome == GateOutcome.FAIL:
            rollout_abort(channel_name=channel_name, actor="system", reason=f"health gate failed: {reason}",
                          to_state=RolloutState.ROLLED_BACK)
        elif result.outcome == GateOutcome.INCONCLUSIVE:
            _rollout_move(rollout=locked, to_state=RolloutState.PAUSED, reason=f"too little data: {reason}")
            _audit(action=ReleaseAuditAction.ROLLOUT_PAUSED, actor="system", channel=channel_name,
                   version=locked.release.version, rollout=locked, detail={"reason": reason},
                   from_state=RolloutState.RUNNING, to_state=RolloutState.PAUSED)
            _manifest_sign(channel=channel, actor="system", reason="rollout paused")
        elif step.get("approve") and locked.step_index + 1 < len(locked.steps):
            _rollout_move(rollout=locked, to_state=RolloutState.WAITING_APPROVAL,
                          reason="health gates passed; waiting for approval")
            _audit(action=ReleaseAuditAction.ROLLOUT_WAITING, actor="system", channel=channel_name,
                   version=locked.release.version, rollout=locked, from_state=RolloutState.RUNNING,
                   to_state=RolloutState.WAITING_APPROVAL)
            _manifest_sign(channel=channel, actor="system", reason="rollout waits for approval")
        else:
            _advance(channel=channel, rollout=locked, actor="system", reason="health gates passed")
    return result


def rollouts_evaluate() -> dict[int, str]:
    """The schedule's entry: evaluate every running rollout whose step hold is over."""
    results = {}
    for rollout_id in Rollout.objects.filter(state=RolloutState.RUNNING).values_list("id", flat=True):
        try:
            result = rollout_gate_evaluate(rollout_id=rollout_id)
        except ReleaseRefused:
            continue
        if result is not None:
            results[rollout_id] = result.outcome
    return results
