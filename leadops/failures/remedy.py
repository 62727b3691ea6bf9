"""The remedy of a failure cluster: roll its channel back, requeue its dead jobs, silence its alerts.

The project package is the only one that may call the releases, queue and alerts services
together (docs/SYSTEM_OVERVIEW.md, "Layers"). Each step is that app's own audited service, so each
writes its own `StaffAction` row; the steps run in one transaction, so either every chosen step
happened or none did (docs/RUNBOOK.md, "Failure clusters").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from alerts.models import Alert, AlertState
from alerts.services import silence_create
from core.audit import Actor
from leadops.failures.clusters import FailureCluster, dead_jobs_of
from queueing.services import dead_jobs_requeue
from releases_app.models import Channel, Rollout, RolloutState
from releases_app.services import channel_rollback

# The alert rules a cluster of failing jobs makes fire on its provider.
DERIVED_ALERTS = ("error_rate", "retry_spike", "dlq_growth", "zero_results", "breaker_open")
SILENCE_MINUTES = 60
REQUEUE_CHUNK = 1000


@dataclass
class RemedyPlan:
    """What the confirm page names before anything happens."""

    cluster: FailureCluster
    rollback_channel: str | None
    rollback_to: str | None
    dead_job_ids: list[int]
    silence_matchers: list[dict[str, str]]
    alerts_silenced: list[Alert] = field(default_factory=list)


def _rollback_target(cluster: FailureCluster) -> tuple[str | None, str | None]:
    """The channel handing out the cluster's release (the one it began with first), and its way back."""
    names = [cluster.began_with.channel] if cluster.began_with else sorted(cluster.channels)
    for name in names:
        channel = Channel.objects.select_related("current", "previous").filter(name=name).first()
        if channel is None or channel.current is None or channel.current.version != cluster.release:
            continue
        rollout = Rollout.objects.select_related("from_release").filter(
            channel=channel, release=channel.current, state__in=[
                RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.WAITING_APPROVAL]).first()
        back_to = rollout.from_release if rollout is not None else channel.previous
        if back_to is not None:
            return name, back_to.version
    return None, None


def remedy_plan(cluster: FailureCluster) -> RemedyPlan:
    channel, back_to = _rollback_target(cluster)
    matchers = [{"name": "provider", "op": "=", "value": cluster.provider},
                {"name": "alertname", "op": "=~", "value": "|".join(DERIVED_ALERTS)}]
    firing = [alert for alert in Alert.objects.filter(state=AlertState.FIRING).order_by("pk")
              if alert.labels.get("provider") == cluster.provider
              and alert.labels.get("alertname") in DERIVED_ALERTS]
    return RemedyPlan(cluster=cluster, rollback_channel=channel, rollback_to=back_to,
                      dead_job_ids=dead_jobs_of(cluster), silence_matchers=matchers, alerts_silenced=firing)


@dataclass
class RemedyDone:
    rolled_back: str | None = None
    requeued: int = 0
    silence_id: int | None = None
    steps: list[str] = field(default_factory=list)


def cluster_remedy(*, plan: RemedyPlan, actor: Actor, rollback: bool, requeue: bool, silence: bool,
                   now: dt.datetime | None = None) -> RemedyDone:
    """Run the chosen steps of `plan`, each through its own audited service, in one transaction."""
    now = now or timezone.now()
    cluster = plan.cluster
    reason = f"failure cluster {cluster.key}: {cluster.code} on {cluster.release} ({cluster.provider})"
    done = RemedyDone()
    with transaction.atomic():
        if rollback and plan.rollback_channel:
            channel_rollback(channel_name=plan.rollback_channel, actor=actor, reason=reason)
            done.rolled_back = plan.rollback_channel
            done.steps.append(f"channel {plan.rollback_channel} rolled back to {plan.rollback_to}")
        if requeue and plan.dead_job_ids:
            for start in range(0, len(plan.dead_job_ids), REQUEUE_CHUNK):
                done.requeued += dead_jobs_requeue(job_ids=plan.dead_job_ids[start:start + REQUEUE_CHUNK],
                                                   actor=actor)
            done.steps.append(f"{done.requeued} dead job(s) requeued")
        if silence:
            made = silence_create(matchers=plan.silence_matchers, starts_at=now,
                                  ends_at=now + dt.timedelta(minutes=SILENCE_MINUTES), created_by=actor.name,
                                  comment=reason, actor=actor)
            done.silence_id = made.pk
            done.steps.append(f"alerts on {cluster.provider} silenced for {SILENCE_MINUTES} min")
    return done


def remedy_permissions(user: Any) -> dict[str, bool]:
    """Which steps this staff user may take (each is the permission of the page it replaces)."""
    return {
        "rollback": user.has_perm("releases_app.change_channel"),
        "requeue": user.has_perm("queueing.change_deadjob"),
        "silence": user.has_perm("alerts.add_silence"),
    }
