"""The built-in rules: what each one reads (through the other apps' selectors only) and when it holds.

Each condition function returns one `Condition` per alert that should be active now: the labels that
identify it (besides `alertname` and `severity`), the measured value, and when the condition began
when the data says so (a heartbeat is overdue from last heartbeat + threshold, not from the moment
the evaluator noticed). docs/RUNBOOK.md ("Alerts") says what each rule means and what to do first.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.models import RuleKind, Severity
from ingestion import selectors as ingestion_selectors
from queueing import selectors as queue_selectors
from workers_mgmt import selectors as worker_selectors

# The error-rate rule needs this many outcomes in its window before a share means anything
# (docs: "failed share of reports over 5 minutes, at least 20").
logger = logging.getLogger(__name__)

ERROR_RATE_WINDOW_S = 300
ERROR_RATE_MIN_OUTCOMES = 20
RETRY_WINDOW_S = 600
DLQ_WINDOW_S = 600


@dataclass(frozen=True)
class RuleDefault:
    threshold: float
    for_seconds: int
    severity: str
    meaning: str


DEFAULTS: dict[str, RuleDefault] = {
    RuleKind.HEARTBEAT_MISSING: RuleDefault(
        60, 0, Severity.CRITICAL, "seconds since the worker's last heartbeat"
    ),
    RuleKind.ERROR_RATE: RuleDefault(
        0.5, 60, Severity.WARNING, "failed share of reports over 5 minutes (at least 20 reports)"
    ),
    RuleKind.RETRY_SPIKE: RuleDefault(50, 0, Severity.WARNING, "failed attempts of a provider in 10 minutes"),
    RuleKind.DLQ_GROWTH: RuleDefault(10, 0, Severity.WARNING, "jobs of a provider that died in 10 minutes"),
    RuleKind.STUCK_JOBS: RuleDefault(
        600, 0, Severity.WARNING, "seconds a job is leased past its lease, or ready and unclaimed"
    ),
    RuleKind.BREAKER_OPEN: RuleDefault(0, 0, Severity.WARNING, "unused: any open breaker"),
    RuleKind.ZERO_RESULTS: RuleDefault(
        30, 0, Severity.WARNING, "minutes in which a provider's jobs succeed and add no lead"
    ),
    RuleKind.READINESS_LOST: RuleDefault(
        0, 0, Severity.CRITICAL, "unused: any Go/No-Go gate that stopped holding"
    ),
    RuleKind.DLQ_PURGE_DUE: RuleDefault(
        72, 0, Severity.WARNING, "hours before the retention purge deletes a provider's first dead job"
    ),
    RuleKind.DSR_DUE_SOON: RuleDefault(
        7, 0, Severity.WARNING, "days before an open data-subject request is due (again on the due date)"
    ),
    RuleKind.BREACH_DEADLINE: RuleDefault(
        48, 0, Severity.CRITICAL, "hours after a breach's discovery with no notification (again at 72 h)"
    ),
}


class ConditionUnavailable(Exception):
    """A condition that cannot be read this round: its rule's alerts stay as they are."""


@dataclass
class Condition:
    labels: dict[str, str]
    value: float
    summary: str
    since: dt.datetime | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def heartbeat_missing(threshold: float, now: dt.datetime) -> list[Condition]:
    overdue = dt.timedelta(seconds=threshold)
    return [
        Condition(
            labels={"worker": worker_id},
            value=round((now - last).total_seconds(), 1),
            summary=f"Worker {worker_id} sent no heartbeat for {int((now - last).total_seconds())} s",
            since=last + overdue,
        )
        for worker_id, last in worker_selectors.workers_overdue(cutoff=now - overdue)
        if last is not None
    ]


def error_rate(threshold: float, now: dt.datetime) -> list[Condition]:
    since = now - dt.timedelta(seconds=ERROR_RATE_WINDOW_S)
    found = []
    for scope, key, successes, failures in queue_selectors.report_outcomes_since(since=since):
        total = successes + failures
        if total < ERROR_RATE_MIN_OUTCOMES or failures / total < threshold:
            continue
        share = failures / total
        found.append(
            Condition(
                labels={scope: key},
                value=round(share, 3),
                summary=f"{scope.capitalize()} {key}: {share:.0%} of {total} reports failed in 5 minutes",
            )
        )
    return found


def retry_spike(threshold: float, now: dt.datetime) -> list[Condition]:
    since = now - dt.timedelta(seconds=RETRY_WINDOW_S)
    counts = queue_selectors.failed_attempts_by_provider(since=since)
    return _providers_at(threshold, counts, "failed attempts in 10 minutes")


def dlq_growth(threshold: float, now: dt.datetime) -> list[Condition]:
    since = now - dt.timedelta(seconds=DLQ_WINDOW_S)
    counts = queue_selectors.dead_jobs_by_provider(since=since)
    return _providers_at(threshold, counts, "jobs went to the dead-letter queue in 10 minutes")


def dlq_purge_due(threshold: float, now: dt.datetime) -> list[Condition]:
    # No dead job leaves the DLQ unannounced: this fires `threshold` hours before the retention
    # purge may delete the first dead job of a provider (docs/RUNBOOK.md, "Dead-letter queue").
    due = queue_selectors.dead_jobs_purge_due_by_provider(now=now, within=dt.timedelta(hours=threshold))
    return [
        Condition(labels={"provider": provider}, value=count,
                  summary=(f"Provider {provider}: {count} dead job(s) will be purged by retention from "
                           f"{purge_at:%Y-%m-%d %H:%M} UTC: requeue them or let them go"),
                  annotations={"purge_at": purge_at.isoformat()})
        for provider, (count, purge_at) in sorted(due.items())
    ]


def dsr_due_soon(threshold: float, now: dt.datetime) -> list[Condition]:
    # Two stages, two alerts (the labels differ): `threshold` days before the due date, and on it.
    # Only the request id and kind leave the portal, never the number (docs/PRIVACY.md).
    found = []
    horizon = now + dt.timedelta(days=threshold)
    for request_id, kind, due_at in ingestion_selectors.requests_due_by(moment=horizon):
        stage = "due" if due_at <= now else "soon"
        days_left = (due_at - now).total_seconds() / 86400
        tail = ": answer it today or record why not" if stage == "due" else f", {days_left:.1f} days left"
        summary = f"Data-subject request {request_id} ({kind}) is due {due_at:%Y-%m-%d %H:%M} UTC{tail}"
        found.append(Condition(labels={"request": str(request_id), "stage": stage}, value=round(days_left, 2),
                               summary=summary, annotations={"due_at": due_at.isoformat()}))
    return found


BREACH_FINAL_HOURS = 72


def breach_deadline(threshold: float, now: dt.datetime) -> list[Condition]:
    # Fires `threshold` hours after discovery and again at 72 hours while no notification is recorded.
    found = []
    for incident_id, discovered_at in ingestion_selectors.breaches_unnotified(
            discovered_before=now - dt.timedelta(hours=threshold)):
        hours = (now - discovered_at).total_seconds() / 3600
        stage = "72h" if hours >= BREACH_FINAL_HOURS else f"{int(threshold)}h"
        deadline = discovered_at + dt.timedelta(hours=BREACH_FINAL_HOURS)
        found.append(Condition(
            labels={"incident": str(incident_id), "stage": stage}, value=round(hours, 1),
            summary=(f"Breach {incident_id}: {hours:.0f} h since discovery and no notification to the "
                     f"authority recorded (deadline {deadline:%Y-%m-%d %H:%M} UTC)"),
            annotations={"deadline": deadline.isoformat()}))
    return found


def _providers_at(threshold: float, counts: dict[str, int], what: str) -> list[Condition]:
    """A condition per provider whose count reached `threshold`: "Provider P: N <what>"."""
    return [
        Condition(labels={"provider": provider}, value=count, summary=f"Provider {provider}: {count} {what}")
        for provider, count in sorted(counts.items())
        if count >= threshold
    ]


def stuck_jobs(threshold: float, now: dt.datetime) -> list[Condition]:
    found = []
    for provider, counts in sorted(
        queue_selectors.stuck_jobs_by_provider(now=now, grace_s=threshold).items()
    ):
        total = counts["leased"] + counts["unclaimed"]
        if total:
            found.append(
                Condition(
                    labels={"provider": provider},
                    value=total,
                    summary=(
                        f"Provider {provider}: {counts['leased']} jobs leased past their lease and "
                        f"{counts['unclaimed']} ready but unclaimed for over {int(threshold)} s"
                    ),
                )
            )
    return found


def breaker_open(threshold: float, now: dt.datetime) -> list[Condition]:
    return [
        Condition(
            labels={scope: key},
            value=1,
            since=opened_at,
            summary=f"The circuit breaker of {scope} {key} is open",
        )
        for scope, key, opened_at in queue_selectors.breakers_open()
    ]


def zero_results(threshold: float, now: dt.datetime) -> list[Condition]:
    since = now - dt.timedelta(minutes=threshold)
    return [
        Condition(
            labels={"provider": provider},
            value=counts["succeeded"],
            summary=(
                f"Provider {provider}: {counts['succeeded']} jobs succeeded in the last "
                f"{int(threshold)} minutes and added no lead"
            ),
        )
        for provider, counts in sorted(queue_selectors.succeeded_attempts_by_provider(since=since).items())
        if counts["succeeded"] and not counts["added"]
    ]


# The project package computes readiness from every app, which alerts may not import: it hands its
# reader in at start-up (leadops/apps.py). The reader returns (gate, why) of every gate that held
# once and does not hold now.
ReadinessLostReader = Callable[[dt.datetime], list[tuple[str, str]]]
_readiness_lost_reader: ReadinessLostReader | None = None


def register_readiness_reader(reader: ReadinessLostReader) -> None:
    global _readiness_lost_reader
    _readiness_lost_reader = reader


def readiness_lost(threshold: float, now: dt.datetime) -> list[Condition]:
    if _readiness_lost_reader is None:
        return []
    try:
        lost = _readiness_lost_reader(now)
    except Exception:
        # The rules after this one in the round (stuck jobs among them) must still be evaluated.
        logger.exception("readiness could not be read; readiness_lost keeps its alerts as they are")
        raise ConditionUnavailable("readiness") from None
    return [
        Condition(labels={"gate": gate}, value=1, summary=f"Go/No-Go gate {gate} stopped holding: {why}")
        for gate, why in lost
    ]


CONDITIONS: dict[str, Callable[[float, dt.datetime], list[Condition]]] = {
    RuleKind.HEARTBEAT_MISSING: heartbeat_missing,
    RuleKind.ERROR_RATE: error_rate,
    RuleKind.RETRY_SPIKE: retry_spike,
    RuleKind.DLQ_GROWTH: dlq_growth,
    RuleKind.STUCK_JOBS: stuck_jobs,
    RuleKind.BREAKER_OPEN: breaker_open,
    RuleKind.ZERO_RESULTS: zero_results,
    RuleKind.READINESS_LOST: readiness_lost,
    RuleKind.DLQ_PURGE_DUE: dlq_purge_due,
    RuleKind.DSR_DUE_SOON: dsr_due_soon,
    RuleKind.BREACH_DEADLINE: breach_deadline,
}
