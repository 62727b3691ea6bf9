"""Reads of releases: a worker's update decision, adoption per version and rollout progress."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from releases_app.models import (
    ACTIVE_ROLLOUT_STATES,
    Channel,
    Release,
    ReleaseState,
    Rollout,
    RolloutTarget,
    TargetReason,
    WorkerPin,
    WorkerReleaseStatus,
)
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


def update_decision(*, worker: Worker, channel: Channel, running_version: str) -> UpdateDecision:
    """Which release this worker should run: pin > canary list > step share > channel current.

    While a rollout runs, the channel's `current` is the new release and `previous` the one it
    replaces: workers the rollout has not reached yet stay on `previous`.
    """
    now = timezone.now()
    pin = WorkerPin.objects.select_related("release").filter(worker=worker).first()
    chosen: Release | None
    if pin is not None and (pin.expires_at is None or pin.expires_at > now) \
            and pin.release.state == ReleaseState.READY:
        chosen, reason = pin.release, UpdateReason.PIN
    else:
        rollout = Rollout.objects.filter(channel=channel, state__in=ACTIVE_ROLLOUT_STATES).first()
        if rollout is None:
            chosen, reason = channel.current, UpdateReason.CHANNEL
        else:
            target = RolloutTarget.objects.filter(rollout=rollout, worker_id=worker.pk).values_list(
                "reason", flat=True).first()
            if target is None:
                chosen, reason = channel.previous, UpdateReason.CHANNEL
            else:
                chosen = channel.current
                reason = UpdateReason.CANARY if target == TargetReason.CANARY else UpdateReason.COHORT
    if chosen is None or chosen.version == running_version:
        return UpdateDecision(release=None, reason=UpdateReason.CURRENT if chosen else reason)
    return UpdateDecision(release=chosen, reason=reason)


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
    """Per step: workers it added, how many installed the release, how many failed."""
    version = rollout.release.version
    targets = list(RolloutTarget.objects.filter(rollout=rollout).values("worker_id", "step_index"))
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
        if status is not None and status.failed:
            row["failed"] += 1
        elif status is not None and status.install_ok:
            row["installed"] += 1
    return [per_step[index] for index in sorted(per_step)]


def failed_installs(*, limit: int = 50) -> list[WorkerReleaseStatus]:
    failed = Q(install_ok=False) | Q(self_test_ok=False) | Q(rolled_back_at__isnull=False)
    return list(WorkerReleaseStatus.objects.filter(failed).order_by("-updated_at")[:limit])


def releases_overview() -> dict[str, Any]:
    """What the monitor page shows of releases: adoption, active rollouts with progress, failures."""
    rollouts = list(Rollout.objects.filter(state__in=ACTIVE_ROLLOUT_STATES)
                    .select_related("release", "channel"))
    return {
        "adoption": adoption_by_channel(),
        "rollouts": [{"rollout": r, "progress": rollout_progress(rollout=r)} for r in rollouts],
        "failed_installs": failed_installs(limit=10),
    }
