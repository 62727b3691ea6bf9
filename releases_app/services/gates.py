"""Health gates: judge a rollout step after its hold, then advance, pause or roll back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from queueing.selectors import attempt_outcomes_since
from releases_app.models import (
    ReleaseAuditAction,
    Rollout,
    RolloutState,
    RolloutTarget,
    WorkerReleaseStatus,
)
from releases_app.services.base import (
    DEFAULT_GATES,
    ReleaseRefused,
    heartbeat_window,
    min_hold_s,
    release_audit,
)
from releases_app.services.manifests import iso_utc, manifest_sign
from releases_app.services.rollouts import active_rollout_locked, rollout_abort, rollout_advance, rollout_move
from releases_app.services.yield_gate import yield_judge
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_config_get


class GateOutcome:
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    LOW_YIELD = "low_yield"  # the yield gate asks for a pause (its `yield_action`)


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
    """Judge the workers the rollout has reached (docs/RELEASES.md, "Health gates"); writes nothing.

    Only what a worker reported since the step reached it counts: an earlier rollout of the same
    version may have left install reports. A target that is offline (no heartbeat within the window)
    and has not installed is left out: it never ran the release, so it neither fails the step nor
    keeps it waiting; it gets the release when it comes back. A target that installed and then went
    silent fails the step (the new version may be what stopped it).
    """
    gates = {**DEFAULT_GATES, **(rollout.gates or {})}
    now = timezone.now()
    version = rollout.release.version
    reached_at = dict(RolloutTarget.objects.filter(rollout=rollout).values_list("worker_id", "created_at"))
    targets = sorted(reached_at)
    statuses = {s.worker_id: s for s in
                WorkerReleaseStatus.objects.filter(version=version, worker_id__in=targets)
                if s.updated_at >= reached_at[s.worker_id]}
    workers = {w.id: w for w in Worker.objects.filter(id__in=targets)}
    fails: list[str] = []
    unknown: list[str] = []

    late_after = heartbeat_window(heartbeat_interval_s=worker_config_get().heartbeat_interval_s, gates=gates)

    def heard(name: str) -> bool:
        worker = workers.get(name)
        return (worker is not None and worker.last_seen_at is not None
                and now - worker.last_seen_at <= late_after)

    # Installed since the step reached it: its install report, or its heartbeat says it runs the
    # version (a worker that ran it already gets no target and reports no install).
    installed: dict[str, dt.datetime] = {}
    for name in targets:
        status, worker = statuses.get(name), workers.get(name)
        if status is not None and status.install_ok and status.installed_at is not None \
                and status.installed_at >= reached_at[name]:
            installed[name] = status.installed_at
        elif worker is not None and worker.reported_version == version and worker.last_heartbeat_at \
                and worker.last_heartbeat_at >= reached_at[name]:
            installed[name] = reached_at[name]
    failed_install = sorted(w for w, s in statuses.items() if s.failed)
    waiting = [w for w in targets if w not in installed and w not in failed_install]
    not_installed = [w for w in waiting if heard(w)]
    offline = [w for w in waiting if not heard(w)]
    if failed_install:
        fails.append(f"install or self-test failed on {', '.join(failed_install)}")
    if not_installed:
        unknown.append(f"not installed yet on {', '.join(not_installed)}")
    if targets and not installed and not failed_install and not not_installed:
        unknown.append("no worker the rollout reached is online")

    silent = sorted(w for w in installed if not heard(w))
    if silent:
        fails.append(f"heartbeat late from {', '.join(silent)}")
    bad_self_test = sorted(
        w for w, worker in workers.items()
        if isinstance(worker.last_self_test, dict) and worker.last_self_test.get("ok") is False
        and worker.last_self_test.get("version", version) == version
    )
    if bad_self_test:
        fails.append(f"heartbeat self-test failing on {', '.join(bad_self_test)}")

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
    verdict = yield_judge(canary_since=installed, baseline_workers=list(others), gates=gates)
    checks = {
        **verdict.checks,
        "targets": len(targets), "installed": len(installed), "failed_installs": failed_install,
        "silent": silent, "offline": offline, "error_rate": new_rate, "attempts": new_total,
        "previous_error_rate": old_rate,
        "previous_attempts": old_total, "allowed_error_rate": allowed, "evaluated_at": iso_utc(now),
    }
    low_yield = [f"yield low: {item}" for item in verdict.low]
    if low_yield and gates.get("yield_action") == "rollback":
        fails.extend(low_yield)
    if fails:
        return GateResult(GateOutcome.FAIL, checks, fails + unknown)
    if low_yield:
        return GateResult(GateOutcome.LOW_YIELD, checks, low_yield + unknown)
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
    # Never sooner than every online worker could have installed, whatever the step's hold_s says (a
    # hold set shorter, or a heartbeat interval raised since the rollout started).
    hold_s = max(step.get("hold_s", 0), min_hold_s(worker_config_get().heartbeat_interval_s))
    if timezone.now() < rollout.step_started_at + dt.timedelta(seconds=hold_s):
        return None
    result = rollout_gate_check(rollout=rollout)
    channel_name = rollout.channel.name
    with transaction.atomic():
        channel, locked = active_rollout_locked(channel_name)
        moved = locked.pk != rollout.pk or locked.state != RolloutState.RUNNING
        if moved or locked.step_index != rollout.step_index:
            return None  # someone else moved it meanwhile
        Rollout.objects.filter(pk=locked.pk).update(last_gate_result=result.as_dict())
        release_audit(action=ReleaseAuditAction.GATE_EVALUATED, actor="system", channel=channel_name,
                      version=locked.release.version, rollout=locked,
                      detail={"step": locked.step_index, **result.as_dict()}, from_state=locked.state,
                      to_state=f"gate_{result.outcome}")
        reason = "; ".join(result.reasons)
        if result.outcome == GateOutcome.FAIL:
            rollout_abort(channel_name=channel_name, actor="system", reason=f"health gate failed: {reason}",
                          to_state=RolloutState.ROLLED_BACK)
        elif result.outcome in (GateOutcome.INCONCLUSIVE, GateOutcome.LOW_YIELD):
            why = "too little data" if result.outcome == GateOutcome.INCONCLUSIVE else "health gate paused"
            rollout_move(rollout=locked, to_state=RolloutState.PAUSED, reason=f"{why}: {reason}")
            release_audit(action=ReleaseAuditAction.ROLLOUT_PAUSED, actor="system", channel=channel_name,
                          version=locked.release.version, rollout=locked, detail={"reason": reason},
                          from_state=RolloutState.RUNNING, to_state=RolloutState.PAUSED)
            manifest_sign(channel=channel, actor="system", reason="rollout paused")
        elif step.get("approve") and locked.step_index + 1 < len(locked.steps):
            rollout_move(rollout=locked, to_state=RolloutState.WAITING_APPROVAL,
                         reason="health gates passed; waiting for approval")
            release_audit(action=ReleaseAuditAction.ROLLOUT_WAITING, actor="system", channel=channel_name,
                          version=locked.release.version, rollout=locked, from_state=RolloutState.RUNNING,
                          to_state=RolloutState.WAITING_APPROVAL)
            manifest_sign(channel=channel, actor="system", reason="rollout waits for approval")
        else:
            rollout_advance(channel=channel, rollout=locked, actor="system", reason="health gates passed")
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
