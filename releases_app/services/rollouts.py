"""Rollouts: start, advance, pause, resume, abort, and the channel rollback (docs/RELEASES.md)."""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.utils import timezone

from core.audit import Actor, actor_label, staff_change
from releases_app.models import (
    Channel,
    Release,
    ReleaseAuditAction,
    ReleaseState,
    Rollout,
    RolloutState,
    RolloutTarget,
    TargetReason,
)
from releases_app.services.base import (
    DEFAULT_GATES,
    DEFAULT_HOLD_S,
    ReleaseRefused,
    heartbeat_window,
    release_audit,
)
from releases_app.services.manifests import (
    CHANNEL_TYPE,
    active_rollout,
    channel_get_or_create,
    channel_locked,
    manifest_sign,
)
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_config_get


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
    """Add the workers step `step_index` reaches; earlier targets stay, so steps only ever add.

    A count or a share is filled with online workers first (a heartbeat within the gates' window),
    each group in the rollout's hash order: a step then reaches workers that install it within a
    heartbeat and that the gates can judge, rather than machines that are switched off
    (docs/RELEASES.md, "The rollout model"). Offline workers are reached only when the online ones
    are not enough; the gates leave them out until they are heard from.
    """
    steps = rollout.steps
    canaries = [name for step in steps[: step_index + 1] for name in step.get("canary", [])]
    # Pinned workers are left out of the ranking: a pin outranks the rollout, so reaching them would
    # only leave the gates waiting for installs that never come.
    heard = dict(Worker.objects.filter(channel=rollout.channel.name, enabled=True, release_pin__isnull=True)
                 .values_list("id", "last_seen_at"))
    fleet = list(heard)
    window = heartbeat_window(heartbeat_interval_s=worker_config_get().heartbeat_interval_s,
                              gates={**DEFAULT_GATES, **(rollout.gates or {})})
    online_since = timezone.now() - window
    online = {name for name, at in heard.items() if at is not None and at >= online_since}
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
                     key=lambda name: (name not in online, worker_rank_key(rollout.salt, name)))
    fill = max(0, wanted - len(taken))
    new_rows += [
        RolloutTarget(rollout=rollout, worker_id=name, step_index=step_index, reason=TargetReason.COHORT)
        for name in ranking[:fill]
    ]
    RolloutTarget.objects.bulk_create(new_rows, ignore_conflicts=True)
    return len(new_rows)


def rollout_start(
    *, version: str, channel_name: str, canary: list[str] | None = None,
    steps: list[dict[str, Any]] | None = None, gates: dict[str, Any] | None = None, actor: Actor | str,
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
    with staff_change(actor=actor, action="rollout.start", object_type=CHANNEL_TYPE,
                      object_ids=[channel_name], detail={"version": version}):
        actor = actor_label(actor)
        channel_get_or_create(name=channel_name, actor=actor)
        channel = channel_locked(channel_name)
        if named:
            found = dict(Worker.objects.filter(id__in=named).values_list("id", "channel"))
            missing = sorted(named - set(found))
            if missing:
                raise ReleaseRefused(f"unknown canary workers: {', '.join(missing)}")
            elsewhere = sorted(name for name, ch in found.items() if ch != channel_name)
            if elsewhere:
                raise ReleaseRefused(f"canary workers not on channel {channel_name}: {', '.join(elsewhere)}")
        if active_rollout(channel) is not None:
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
        release_audit(action=ReleaseAuditAction.ROLLOUT_STARTED, actor=actor, channel=channel_name,
                      version=version, rollout=rollout,
                      detail={"steps": steps, "gates": gates, "targets_added": added,
                       "from_version": channel.previous.version if channel.previous else None},
                      to_state=RolloutState.RUNNING)
        manifest_sign(channel=channel, actor=actor, reason="rollout started")
    return rollout


def active_rollout_locked(channel_name: str) -> tuple[Channel, Rollout]:
    channel = channel_locked(channel_name)
    rollout = (Rollout.objects.active().select_for_update(of=("self",)).select_related("release", "channel")
               .filter(channel=channel).first())
    if rollout is None:
        raise ReleaseRefused(f"channel {channel_name} has no rollout in progress")
    return channel, rollout


@contextmanager
def _rollout_staff_change(*, channel_name: str, actor: Actor | str, action: str,
                          detail: dict[str, Any] | None = None) -> Iterator[tuple[str, Channel, Rollout]]:
    """One staff change of the channel's rollout in progress: yield the actor's label and both rows."""
    with staff_change(actor=actor, action=action, object_type=CHANNEL_TYPE, object_ids=[channel_name],
                      detail=detail):
        channel, rollout = active_rollout_locked(channel_name)
        yield actor_label(actor), channel, rollout


def rollout_move(*, rollout: Rollout, to_state: str, reason: str, **changes: Any) -> None:
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


def rollout_advance(*, channel: Channel, rollout: Rollout, actor: str, reason: str) -> Rollout:
    """Next step, or done after the last one; then re-sign (the manifest names the step)."""
    before = rollout.state
    now = timezone.now()
    if rollout.step_index + 1 >= len(rollout.steps):
        rollout_move(rollout=rollout, to_state=RolloutState.DONE, reason=reason, finished_at=now)
        release_audit(action=ReleaseAuditAction.ROLLOUT_DONE, actor=actor, channel=channel.name,
                      version=rollout.release.version, rollout=rollout, detail={"reason": reason},
                      from_state=before, to_state=RolloutState.DONE)
    else:
        step_index = rollout.step_index + 1
        rollout_move(rollout=rollout, to_state=RolloutState.RUNNING, reason=reason, step_index=step_index,
                     step_started_at=now)
        added = _step_targets_apply(rollout=rollout, step_index=step_index)
        release_audit(action=ReleaseAuditAction.ROLLOUT_STEP, actor=actor, channel=channel.name,
                      version=rollout.release.version, rollout=rollout,
                      detail={"step": step_index, "targets_added": added, "reason": reason},
                      from_state=before, to_state=RolloutState.RUNNING)
    manifest_sign(channel=channel, actor=actor, reason=f"rollout {rollout.state}")
    return rollout


def rollout_promote(*, channel_name: str, actor: Actor | str) -> Rollout:
    """Promote now: skip the rest of the hold and the gates, go to the next step (or finish)."""
    with _rollout_staff_change(channel_name=channel_name, actor=actor,
                               action="rollout.promote") as (actor, channel, rollout):
        return rollout_advance(channel=channel, rollout=rollout, actor=actor, reason=f"promoted by {actor}")


def rollout_pause(*, channel_name: str, actor: Actor | str, reason: str = "") -> Rollout:
    with _rollout_staff_change(channel_name=channel_name, actor=actor,
                               action="rollout.pause") as (actor, channel, rollout):
        if rollout.state == RolloutState.PAUSED:
            return rollout
        before = rollout.state
        rollout_move(rollout=rollout, to_state=RolloutState.PAUSED, reason=reason or f"paused by {actor}")
        release_audit(action=ReleaseAuditAction.ROLLOUT_PAUSED, actor=actor, channel=channel.name,
                      version=rollout.release.version, rollout=rollout, detail={"reason": reason},
                      from_state=before, to_state=RolloutState.PAUSED)
        manifest_sign(channel=channel, actor=actor, reason="rollout paused")
    return rollout


def rollout_resume(*, channel_name: str, actor: Actor | str) -> Rollout:
    """Paused -> running; the step's hold starts again so the gates see fresh data."""
    with _rollout_staff_change(channel_name=channel_name, actor=actor,
                               action="rollout.resume") as (actor, channel, rollout):
        if rollout.state != RolloutState.PAUSED:
            raise ReleaseRefused(f"the rollout on {channel_name} is {rollout.state}, not paused")
        rollout_move(rollout=rollout, to_state=RolloutState.RUNNING, reason=f"resumed by {actor}",
                     step_started_at=timezone.now())
        release_audit(action=ReleaseAuditAction.ROLLOUT_RESUMED, actor=actor, channel=channel.name,
                      version=rollout.release.version, rollout=rollout, from_state=RolloutState.PAUSED,
                      to_state=RolloutState.RUNNING)
        manifest_sign(channel=channel, actor=actor, reason="rollout resumed")
    return rollout


def _revert_channel(*, channel: Channel, to_release: Release | None) -> None:
    Channel.objects.filter(pk=channel.pk).update(current=to_release, previous=None, updated_at=timezone.now())
    channel.current, channel.previous = to_release, None


def rollout_abort(*, channel_name: str, actor: Actor | str, reason: str = "",
                  to_state: str = RolloutState.ABORTED) -> Rollout:
    """Stop the rollout and put every worker back on the release the channel had before it."""
    with _rollout_staff_change(channel_name=channel_name, actor=actor, action="rollout.abort",
                               detail={"to_state": to_state}) as (actor, channel, rollout):
        before = rollout.state
        reason = reason or f"{to_state} by {actor}"
        rollout_move(rollout=rollout, to_state=to_state, reason=reason, finished_at=timezone.now())
        _revert_channel(channel=channel, to_release=rollout.from_release)
        action = ReleaseAuditAction.ROLLED_BACK if to_state == RolloutState.ROLLED_BACK \
            else ReleaseAuditAction.ROLLOUT_ABORTED
        release_audit(action=action, actor=actor, channel=channel.name, version=rollout.release.version,
                      rollout=rollout,
                      detail={"reason": reason,
                              "back_to": channel.current.version if channel.current else None},
                      from_state=before, to_state=to_state)
        manifest_sign(channel=channel, actor=actor, reason=to_state)
    return rollout


def channel_rollback(*, channel_name: str, actor: Actor | str, reason: str = "") -> Channel:
    """Channel current = previous, sequence + 1, manifest re-signed; stops a rollout in progress."""
    with staff_change(actor=actor, action="channel.rollback",
                      object_type=CHANNEL_TYPE, object_ids=[channel_name]):
        actor = actor_label(actor)
        channel = channel_locked(channel_name)
        if active_rollout(channel) is not None:
            rollout_abort(channel_name=channel_name, actor=actor, reason=reason or f"rolled back by {actor}",
                          to_state=RolloutState.ROLLED_BACK)
            return Channel.objects.get(pk=channel.pk)
        if channel.previous is None:
            raise ReleaseRefused(f"channel {channel_name} has no previous release to go back to")
        rolled = channel.current
        _revert_channel(channel=channel, to_release=channel.previous)
        last = Rollout.objects.filter(channel=channel, release=rolled, state=RolloutState.DONE).first()
        if last is not None:
            rollout_move(rollout=last, to_state=RolloutState.ROLLED_BACK,
                         reason=reason or f"rolled back by {actor}")
        release_audit(action=ReleaseAuditAction.ROLLED_BACK, actor=actor, channel=channel.name,
                      version=rolled.version if rolled else "", rollout=last,
                      detail={"reason": reason,
                              "back_to": channel.current.version if channel.current else None},
                      from_state="current", to_state=RolloutState.ROLLED_BACK)
        manifest_sign(channel=channel, actor=actor, reason="rolled back")
    return channel
