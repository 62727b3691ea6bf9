"""Failure clusters: failed attempts and dead jobs grouped by fingerprint x worker release x provider.

Read-only. The queue keeps no release on an attempt, so the release an attempt ran is read from
the releases app: the worker's latest successful install at or before the attempt's claim
(`WorkerReleaseStatus`); for a worker that never reported an install, the version its heartbeat
reports; otherwise the release its channel last finished rolling out (or rolled back to) before
the claim (docs/RUNBOOK.md, "Failure clusters").
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from leadops.failures.fingerprint import failure_fingerprint, failure_of
from queueing.models import AttemptEvidence, AttemptState, Job, JobAttempt, JobState
from releases_app.models import ReleaseAuditAction, ReleaseAuditEvent, WorkerReleaseStatus
from workers_mgmt.models import Worker

FAILED_STATES = (AttemptState.FAILED, AttemptState.LOST)
UNKNOWN_RELEASE = "unknown"
# The newest failed attempts read for one page: enough for any incident, bounded for a bad day.
MAX_ATTEMPTS_READ = 20_000
DEFAULT_DAYS = 7


def rollout_window() -> dt.timedelta:
    """How soon after a rollout step a cluster's first failure must come to be blamed on it."""
    return dt.timedelta(seconds=settings.LEADOPS_CLUSTER_ROLLOUT_WINDOW_S)


@dataclass(frozen=True)
class BeganWith:
    release: str
    channel: str
    step_at: dt.datetime
    step: str


@dataclass
class FailureCluster:
    key: str
    fingerprint: str
    code: str
    message: str
    release: str
    provider: str
    count: int = 0
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    workers: set[str] = field(default_factory=set)
    channels: set[str] = field(default_factory=set)
    attempt_ids: list[uuid.UUID] = field(default_factory=list)
    dead_job_ids: list[int] = field(default_factory=list)
    sample_attempt_id: uuid.UUID | None = None
    sample_job_id: int | None = None
    sample_evidence_id: uuid.UUID | None = None
    sample_log_tail: str = ""
    began_with: BeganWith | None = None


class ReleaseHistory:
    """Which release each worker ran at a given instant, from the install reports."""

    def __init__(self, worker_ids: set[str]) -> None:
        self.installs: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
        rows = WorkerReleaseStatus.objects.filter(worker_id__in=worker_ids, install_ok=True,
                                                  installed_at__isnull=False)
        for worker_id, version, at in rows.values_list("worker_id", "version", "installed_at"):
            if at is not None:
                self.installs[worker_id].append((at, version))
        for installs in self.installs.values():
            installs.sort()
        known = Worker.objects.filter(id__in=worker_ids).values_list("id", "reported_version", "channel")
        self.workers = {row[0]: row[1:] for row in known}
        # What each channel handed out as a whole: finished rollouts, and rollbacks (their "back_to").
        self.channel_releases: dict[str, list[tuple[dt.datetime, str]]] = defaultdict(list)
        channels = {channel for _, channel in self.workers.values()}
        moves = ReleaseAuditEvent.objects.filter(
            channel__in=channels,
            action__in=[ReleaseAuditAction.ROLLOUT_DONE, ReleaseAuditAction.ROLLED_BACK])
        for action, channel, version, at, detail in moves.order_by("created_at").values_list(
                "action", "channel", "version", "created_at", "detail"):
            if action == ReleaseAuditAction.ROLLED_BACK:
                version = str(detail.get("back_to") or "") if isinstance(detail, dict) else ""
            if version:
                self.channel_releases[channel].append((at, version))

    def release_at(self, worker_id: str | None, at: dt.datetime) -> str:
        if worker_id is None:
            return UNKNOWN_RELEASE
        installs = self.installs.get(worker_id, [])
        index = bisect.bisect_right([when for when, _ in installs], at)
        if index:
            return installs[index - 1][1]
        reported, channel = self.workers.get(worker_id, ("", ""))
        if not installs and reported:
            return reported
        # Before its first recorded install: what its channel handed out as a whole then.
        handed = [version for when, version in self.channel_releases.get(channel, []) if when <= at]
        return handed[-1] if handed else UNKNOWN_RELEASE

    def channel_of(self, worker_id: str | None) -> str:
        return self.workers.get(worker_id or "", ("", ""))[1]


def cluster_key(fingerprint: str, release: str, provider: str) -> str:
    return hashlib.sha256(f"{fingerprint}|{release}|{provider}".encode()).hexdigest()[:16]


def _failed_attempts(since: dt.datetime) -> list[Any]:
    return list(JobAttempt.objects.filter(state__in=FAILED_STATES, finished_at__gte=since)
                .order_by("-finished_at").values(
                    "id", "job_id", "worker_id", "claimed_at", "finished_at", "error", "state",
                    "job__provider__name", "job__state", "job__current_attempt_id")[:MAX_ATTEMPTS_READ])


def failure_clusters(*, days: int = DEFAULT_DAYS, now: dt.datetime | None = None) -> list[FailureCluster]:
    """Every cluster with a failure in the last `days` days, newest first."""
    now = now or timezone.now()
    rows = _failed_attempts(now - dt.timedelta(days=days))
    history = ReleaseHistory({row["worker_id"] for row in rows if row["worker_id"]})
    clusters: dict[str, FailureCluster] = {}
    first_of_fingerprint: dict[str, dt.datetime] = {}
    for row in reversed(rows):  # oldest first
        code, message = failure_of(row["error"], lost=row["state"] == AttemptState.LOST)
        fingerprint = failure_fingerprint(code, message)
        release = history.release_at(row["worker_id"], row["claimed_at"])
        provider = row["job__provider__name"]
        key = cluster_key(fingerprint, release, provider)
        cluster = clusters.get(key)
        if cluster is None:
            cluster = clusters[key] = FailureCluster(key=key, fingerprint=fingerprint, code=code,
                                                     message=message, release=release, provider=provider,
                                                     first_seen=row["finished_at"])
        first_of_fingerprint.setdefault(fingerprint, row["finished_at"])
        cluster.count += 1
        cluster.last_seen = row["finished_at"]
        cluster.attempt_ids.append(row["id"])
        cluster.sample_attempt_id, cluster.sample_job_id = row["id"], row["job_id"]
        if row["worker_id"]:
            cluster.workers.add(row["worker_id"])
            cluster.channels.add(history.channel_of(row["worker_id"]))
        if row["job__state"] == JobState.DEAD and row["job__current_attempt_id"] == row["id"]:
            cluster.dead_job_ids.append(row["job_id"])
    _samples_attach(list(clusters.values()))
    _began_with_attach(list(clusters.values()), first_of_fingerprint)
    return sorted(clusters.values(), key=lambda c: (c.last_seen or now, c.count), reverse=True)


def cluster_find(*, key: str, days: int = DEFAULT_DAYS) -> FailureCluster | None:
    return next((cluster for cluster in failure_clusters(days=days) if cluster.key == key), None)


def _samples_attach(clusters: list[FailureCluster]) -> None:
    """The newest screenshot and the newest non-empty log tail of each cluster's attempts."""
    owner = {attempt_id: cluster for cluster in clusters for attempt_id in cluster.attempt_ids}
    if not owner:
        return
    ids = list(owner)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        for attempt_id, evidence_id in (AttemptEvidence.objects.filter(attempt_id__in=chunk)
                                        .order_by("created_at").values_list("attempt_id", "id")):
            owner[attempt_id].sample_evidence_id = evidence_id
        tails = (JobAttempt.objects.filter(pk__in=chunk).exclude(log_tail="")
                 .order_by("finished_at").values_list("id", "log_tail"))
        for attempt_id, tail in tails:
            owner[attempt_id].sample_log_tail = tail


def _began_with_attach(clusters: list[FailureCluster], first_of_fingerprint: dict[str, dt.datetime]) -> None:
    """Mark a cluster whose first failure followed a rollout step of its release on its channel.

    The step is the latest start or step of a rollout of the cluster's release on a channel of the
    cluster's workers before the first failure; it counts when the failure came within the window
    after it and no failure of the same fingerprint (any release, any provider) came before it.
    """
    releases = {cluster.release for cluster in clusters if cluster.release != UNKNOWN_RELEASE}
    steps: dict[str, list[tuple[dt.datetime, str, str]]] = defaultdict(list)
    started = ReleaseAuditEvent.objects.filter(
        version__in=releases,
        action__in=[ReleaseAuditAction.ROLLOUT_STARTED, ReleaseAuditAction.ROLLOUT_STEP])
    for version, channel, at, detail in started.order_by("created_at").values_list(
            "version", "channel", "created_at", "detail"):
        step = f"step {detail.get('step', 0)}" if isinstance(detail, dict) else "step 0"
        steps[version].append((at, channel, step))
    window = rollout_window()
    for cluster in clusters:
        first = cluster.first_seen
        if first is None:
            continue
        before = [entry for entry in steps.get(cluster.release, []) if entry[0] <= first
                  and entry[1] in cluster.channels]
        if not before:
            continue
        at, channel, step = before[-1]
        if first - at <= window and first_of_fingerprint[cluster.fingerprint] >= at:
            cluster.began_with = BeganWith(release=cluster.release, channel=channel, step_at=at, step=step)


def dead_jobs_of(cluster: FailureCluster) -> list[int]:
    """The cluster's dead jobs that are still dead now (read again before a remedy acts)."""
    return list(Job.objects.filter(pk__in=cluster.dead_job_ids, state=JobState.DEAD)
                .order_by("pk").values_list("pk", flat=True))
