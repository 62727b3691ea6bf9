"""Reads of releases: a worker's update decision, adoption per version and rollout progress."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from releases_app.models import (
    ACTIVE_ROLLOUT_STATES,
    Channel,
    Release,
    ReleaseAuditAction,
    ReleaseAuditEvent,
    ReleaseState,
    Rollout,
    RolloutTarget,
    TargetReason,
    WorkerPin,
    WorkerReleaseStatus,
)
from releases_app.signing import envelope_verify, signing_keys
from workers_mgmt.models import Worker


class UpdateReason:
    PIN = "pin"
    CANARY = "canary"
    COHORT = "cohort"
    CHANNEL = "channel"
    CURRENT = "current"


@dataclass(frozen=True)
class UpdateDecision:
    release: Release | None
    reason: str


_Chosen = TypeVar("_Chosen")


def _choose(*, pin: _Chosen | None, rollout_active: bool, reached: str | None, current: _Chosen | None,
            previous: _Chosen | None) -> tuple[_Chosen | None, str]:
    """The one precedence rule (docs/RELEASES.md): pin > canary list > step share > channel current.

    `pin` is a valid pin's release (not expired, release ready), `reached` the target reason of the
    rollout in progress for this worker (None when no step reached it). While a rollout runs, the
    channel's `current` is the new release and `previous` the one it replaces: workers the rollout
    has not reached yet stay on `previous`. Shared by the update check and the heartbeat, so the two
    can never disagree about which release a worker should run.
    """
    if pin is not None:
        return pin, UpdateReason.PIN
    if not rollout_active:
        return current, UpdateReason.CHANNEL
    if reached is None:
        return previous, UpdateReason.CHANNEL
    return current, UpdateReason.CANARY if reached == TargetReason.CANARY else UpdateReason.COHORT


def update_decision(*, worker: Worker, channel: Channel, running_version: str) -> UpdateDecision:
    """Which release this worker should run, and null when it runs it already (`_choose`)."""
    now = timezone.now()
    pin = WorkerPin.objects.select_related("release").filter(worker=worker).first()
    valid_pin = (pin.release if pin is not None and (pin.expires_at is None or pin.expires_at > now)
                 and pin.release.state == ReleaseState.READY else None)
    rollout = None
    reached = None
    if valid_pin is None:
        rollout = Rollout.objects.active().filter(channel=channel).first()
        if rollout is not None:
            reached = RolloutTarget.objects.filter(rollout=rollout, worker_id=worker.pk).values_list(
                "reason", flat=True).first()
    chosen, reason = _choose(pin=valid_pin, rollout_active=rollout is not None, reached=reached,
                             current=channel.current, previous=channel.previous)
    if chosen is None or chosen.version == running_version:
        return UpdateDecision(release=None, reason=UpdateReason.CURRENT if chosen else reason)
    return UpdateDecision(release=chosen, reason=reason)


def update_target_of(worker_id: str) -> dict[str, Any] | None:
    """`{version, sequence}` of the release this worker should run now, or None (the heartbeat's answer).

    The same decision as `update_decision`, but whatever the worker runs: the release to run, not the
    action to take. `sequence` is the channel's signed manifest sequence, so a worker can tell a new
    decision from one it has already acted on. One SQL statement of indexed look-ups (the worker row,
    its pin, its channel, the channel's rollout in progress and this worker's target in it), read
    from the database on every call: a change committed by any process (another server, a command)
    is in the very next heartbeat's answer. Reads only: it never creates a channel or signs
    a manifest (an unknown channel answers None, and the worker's next update check creates it).
    """
    # Raw SQL, written once: compiling the same statement through the ORM cost ~2 ms of CPU on every
    # heartbeat, more than all the rest of the heartbeat's work (docs/PERFORMANCE.md, "The credential
    # generation check"). Same rule as `_choose`, same indexes (worker pk, pin pk, channel name, the
    # active rollout's partial unique index, the targets' (rollout, worker) unique index).
    with connection.cursor() as cursor:
        cursor.execute(_update_target_sql(), [connection.ops.adapt_datetimefield_value(timezone.now()),
                                              worker_id])
        row = cursor.fetchone()
    return _update_target_from(row)


def update_target_subquery(vendor: str) -> str:
    """`update_target_of` as one scalar subquery (a JSON array of its columns; parameters: now, the
    worker id), for a statement that reads it along with its own work: the heartbeat's UPDATE
    returns it (docs/PERFORMANCE.md, "The heartbeat, round two"). Decode with
    `update_target_decode`."""
    return _update_target_subquery(vendor)


def update_target_decode(value: Any) -> dict[str, Any] | None:
    """The heartbeat's `update_target` from what `update_target_subquery` gave (JSON text or a list)."""
    if value is None:
        return None
    return _update_target_from(json.loads(value) if isinstance(value, (str, bytes)) else value)


def update_target_now() -> Any:
    """The `now` parameter of the update-target statement, adapted for this database."""
    return connection.ops.adapt_datetimefield_value(timezone.now())


def _update_target_from(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    pin_version, sequence, current_version, previous_version, rollout_id, reached = row
    if sequence is None:
        return None
    version, _reason = _choose(pin=pin_version, rollout_active=rollout_id is not None, reached=reached,
                               current=current_version, previous=previous_version)
    if version is None:
        return None
    return {"version": version, "sequence": sequence}


@lru_cache(maxsize=1)
def _update_target_sql() -> str:
    columns, tables = _update_target_parts()
    return f"SELECT {columns} {tables}"


@lru_cache(maxsize=2)
def _update_target_subquery(vendor: str) -> str:
    array = "json_build_array" if vendor == "postgresql" else "json_array"
    columns, tables = _update_target_parts()
    return f"(SELECT {array}({columns}) {tables})"


def _update_target_parts() -> tuple[str, str]:
    """The update target's columns, and its FROM ... WHERE (parameters: now, the worker id)."""
    worker, pin, release = Worker._meta.db_table, WorkerPin._meta.db_table, Release._meta.db_table
    channel, rollout, target = Channel._meta.db_table, Rollout._meta.db_table, RolloutTarget._meta.db_table
    active = ", ".join(f"'{state}'" for state in ACTIVE_ROLLOUT_STATES)
    return (
        f"(SELECT pr.version FROM {pin} p JOIN {release} pr ON pr.id = p.release_id "
        f"        WHERE p.worker_id = w.id AND pr.state = '{ReleaseState.READY}' "
        f"        AND (p.expires_at IS NULL OR p.expires_at > %s)), "
        f"c.sequence, cur.version, prev.version, ro.id, "
        f"(SELECT t.reason FROM {target} t WHERE t.rollout_id = ro.id AND t.worker_id = w.id)",
        f"FROM {worker} w "
        f"LEFT JOIN {channel} c ON c.name = w.channel "
        f"LEFT JOIN {release} cur ON cur.id = c.current_id "
        f"LEFT JOIN {release} prev ON prev.id = c.previous_id "
        # One active rollout per channel at most (`one_active_rollout_per_channel`): one row.
        f"LEFT JOIN {rollout} ro ON ro.channel_id = c.id AND ro.state IN ({active}) "
        f"WHERE w.id = %s"
    )


def running_version_of(*, worker: Worker) -> str:
    """The version a worker runs: its latest install report, else what its heartbeat said."""
    latest = WorkerReleaseStatus.objects.filter(worker_id=worker.pk).order_by("-updated_at").first()
    if latest is None or not (latest.last_ok and latest.install_ok and latest.rolled_back_at is None):
        return worker.reported_version
    if worker.last_heartbeat_at is None or latest.updated_at >= worker.last_heartbeat_at:
        return latest.version
    return worker.reported_version


def adoption_by_channel() -> list[dict[str, Any]]:
    """Workers per reported version, per channel (from heartbeats: what really runs)."""
    rows = Worker.objects.order_by().values("channel", "reported_version").annotate(workers=Count("id"))
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        channels[row["channel"]][row["reported_version"] or "(unknown)"] += row["workers"]
    current = {c.name: c for c in Channel.objects.select_related("current", "previous")}
    out = []
    for name in sorted(channels):
        channel = current.get(name)
        total = sum(channels[name].values())
        out.append({
            "channel": name,
            "total": total,
            "current": channel.current.version if channel and channel.current else None,
            "previous": channel.previous.version if channel and channel.previous else None,
            "versions": [{"version": version, "workers": count, "share": count / total if total else 0}
                         for version, count in channels[name].most_common()],
        })
    return out


def rollout_progress(*, rollout: Rollout) -> list[dict[str, Any]]:
    """Per step: workers it added, how many installed the release, how many failed.

    Counted as the health gates count: only reports made since the step reached the worker.
    """
    version = rollout.release.version
    targets = list(RolloutTarget.objects.filter(rollout=rollout).values("worker_id", "step_index",
                                                                         "created_at"))
    statuses = {s.worker_id: s for s in WorkerReleaseStatus.objects.filter(
        version=version, worker_id__in=[t["worker_id"] for t in targets])}
    per_step: dict[int, dict[str, Any]] = {}
    for index, step in enumerate(rollout.steps):
        kind = ("canary " + ", ".join(step["canary"]) if "canary" in step
                else f"count {step['count']}" if "count" in step else f"percent {step['percent']}")
        per_step[index] = {"index": index, "kind": kind, "hold_s": step.get("hold_s", 0),
                           "approve": step.get("approve", False), "added": 0, "installed": 0, "failed": 0,
                           "reached": index <= rollout.step_index, "current": index == rollout.step_index}
    for target in targets:
        row = per_step.get(target["step_index"])
        if row is None:
            continue
        row["added"] += 1
        status = statuses.get(target["worker_id"])
        if status is None or status.updated_at < target["created_at"]:
            continue
        if status.failed:
            row["failed"] += 1
        elif status.install_ok:
            row["installed"] += 1
    return [per_step[index] for index in sorted(per_step)]


def failed_installs(*, limit: int = 50) -> list[WorkerReleaseStatus]:
    failed = Q(install_ok=False) | Q(self_test_ok=False) | Q(rolled_back_at__isnull=False)
    return list(WorkerReleaseStatus.objects.filter(failed).order_by("-updated_at")[:limit])


def releases_overview() -> dict[str, Any]:
    """What the monitor page shows of releases: adoption, active rollouts with progress, failures."""
    rollouts = list(Rollout.objects.active().select_related("release", "channel"))
    return {
        "adoption": adoption_by_channel(),
        "rollouts": [{"rollout": r, "progress": rollout_progress(rollout=r)} for r in rollouts],
        "failed_installs": failed_installs(limit=10),
    }


# ----- readiness (docs/PRODUCTION_READINESS.md, "updates") ---------------------------------------

# A rollback or abort that names no reason of its own carries one of these defaults.
_DEFAULT_STOP_REASONS = ("rolled_back by ", "aborted by ", "rolled back by ")


def signing_key_ids() -> list[str]:
    """The ids of the configured manifest signing keys; empty when none is configured."""
    try:
        return [key.key_id for key in signing_keys()]
    except ImproperlyConfigured:
        return []


def _manifest_problem(channel: Channel, now: dt.datetime) -> str:
    if not channel.manifest or channel.manifest_expires_at is None:
        return "no signed manifest"
    if channel.manifest_expires_at <= now:
        return f"manifest expired at {channel.manifest_expires_at:%Y-%m-%d %H:%M} UTC"
    try:
        trusted = {key.key_id: key.public_raw for key in signing_keys()}
    except ImproperlyConfigured:
        trusted = {}
    if not envelope_verify(channel.manifest, trusted):
        return "manifest not signed by a configured key"
    return ""


def _rollout_problem(channel: Channel) -> str:
    """Why the channel's current release did not arrive canary first, or ""."""
    assert channel.current is not None
    rollout = (Rollout.objects.filter(channel=channel, release=channel.current)
               .order_by("-created_at", "-id").first())
    if rollout is None:
        return "" if channel.previous_id is None else \
            f"{channel.current.version} became current without a rollout"
    if rollout.from_release_id is None:
        return ""  # the channel's first release: there was nothing to protect
    if rollout.is_active:
        return (f"the rollout of {channel.current.version} is {rollout.get_state_display().lower()} "
                f"at step {rollout.step_index + 1} of {len(rollout.steps)}")
    first_step = rollout.steps[0] if rollout.steps else {}
    if not first_step.get("canary"):
        return f"the rollout of {channel.current.version} had no canary step"
    return ""


def unexplained_rollbacks(*, channel: str, since: dt.datetime) -> list[str]:
    """Versions rolled back or aborted on `channel` since `since` with no reason of their own."""
    found = []
    events = ReleaseAuditEvent.objects.filter(
        channel=channel, created_at__gte=since,
        action__in=[ReleaseAuditAction.ROLLED_BACK, ReleaseAuditAction.ROLLOUT_ABORTED],
    ).order_by("created_at")
    for event in events:
        reason = str((event.detail or {}).get("reason") or "")
        if not reason or reason.startswith(_DEFAULT_STOP_REASONS):
            found.append(event.version or "?")
    return found


def channel_readiness(*, name: str, now: dt.datetime) -> dict[str, Any]:
    """What the updates gate needs of one channel: its current release and what is not ready."""
    channel = Channel.objects.select_related("current").filter(name=name).first()
    if channel is None or channel.current is None:
        return {"current": None, "problems": ["no release published on it"]}
    problems = [problem for problem in (_manifest_problem(channel, now), _rollout_problem(channel))
                if problem]
    rollbacks = unexplained_rollbacks(channel=name, since=now - dt.timedelta(hours=24))
    if rollbacks:
        problems.append(f"rolled back without a reason in the last 24 h: {', '.join(rollbacks)}")
    return {"current": channel.current.version, "problems": problems}


def rollout_history(*, limit: int = 200) -> list[dict[str, Any]]:
    """Every rollout, newest first, as plain values (the evidence pack's rollout history)."""
    rows = []
    for rollout in Rollout.objects.select_related("channel", "release", "from_release")[:limit]:
        rows.append({
            "id": rollout.pk, "channel": rollout.channel.name, "version": rollout.release.version,
            "from_version": rollout.from_release.version if rollout.from_release else None,
            "state": rollout.state, "state_reason": rollout.state_reason, "step": rollout.step_index,
            "steps": rollout.steps, "started_by": rollout.started_by,
            "started_at": rollout.created_at.isoformat(),
            "finished_at": rollout.finished_at.isoformat() if rollout.finished_at else None,
        })
    return rows


def channel_names() -> list[str]:
    return list(Channel.objects.order_by("name").values_list("name", flat=True))
