"""Reads of the queue for the admin monitor: why work stopped, and the motion of the last hour
(docs/RUNBOOK.md, "The monitor")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, F
from django.db.models.functions import TruncMinute
from django.utils.timezone import localdate
from django.utils.timezone import now as clock_now

from queueing.models import (
    AttemptState,
    Breaker,
    BreakerScope,
    BreakerState,
    Job,
    JobAttempt,
    JobState,
    Provider,
    ProviderQuotaState,
)
from queueing.selectors import job_state_counts


def work_blockers(*, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """What holds work back now, one line an operator can act on each: a provider disabled, its
    breaker open or probing, its daily quota spent, a worker's breaker open."""
    now = now or clock_now()
    queued = {pid: count for (pid, state), count in job_state_counts().items() if state == JobState.QUEUED}
    breakers = {(b.scope, b.key): b for b in Breaker.objects.exclude(state=BreakerState.CLOSED)}
    used = {row.provider_id: row for row in ProviderQuotaState.objects.filter(day=localdate(now))}
    blockers: list[dict[str, Any]] = []
    for provider in Provider.objects.order_by("name"):
        waiting = queued.get(provider.pk, 0)
        held = {"provider": provider.name, "queued": waiting}
        if not provider.enabled:
            blockers.append({**held, "reason": "provider_disabled",
                             "text": f"Provider {provider.name} is disabled: none of its {waiting} queued "
                                     "jobs is handed out until it is enabled again."})
        breaker = breakers.get((BreakerScope.PROVIDER, provider.name))
        if breaker is not None:
            blockers.append({**held, "reason": f"breaker_{breaker.state}", "text": _breaker_text(breaker)})
        quota = used.get(provider.pk)
        if provider.daily_cap and quota is not None and quota.day_count >= provider.daily_cap:
            blockers.append({**held, "reason": "quota_spent",
                             "text": f"Provider {provider.name} spent its daily quota ({quota.day_count} of "
                                     f"{provider.daily_cap} jobs today): its work waits for local midnight."})
    for (scope, _key), breaker in sorted(breakers.items()):
        if scope == BreakerScope.WORKER:
            blockers.append({"provider": "", "queued": 0, "reason": f"breaker_{breaker.state}",
                             "text": _breaker_text(breaker)})
    return blockers


def _breaker_text(breaker: Breaker) -> str:
    who = f"{breaker.get_scope_display().lower()} {breaker.key}"
    if breaker.forced:
        return f"The circuit breaker of {who} is held {breaker.get_state_display().lower()} by staff."
    if breaker.state == BreakerState.OPEN:
        until = f" until {breaker.retry_at:%H:%M:%S} UTC" if breaker.retry_at else ""
        return f"The circuit breaker of {who} is open after too many failures: no jobs{until}."
    return f"The circuit breaker of {who} is half-open: only {breaker.probes_left} probe jobs are handed out."


def throughput_by_minute(*, now: dt.datetime | None = None, minutes: int = 60,
                         sample: int = 5_000) -> list[dict[str, Any]]:
    """Per minute of the last hour: jobs succeeded and dead, attempts failed (to be retried or not),
    and the p95 claim wait in seconds (a job ready -> claimed), oldest minute first.

    Three grouped reads on the finished-at indexes; the claim waits come from at most `sample` of
    the latest finished attempts (those still the job's latest, whose run_at is when it was ready).
    """
    now = now or clock_now()
    end = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    start = end - dt.timedelta(minutes=minutes)
    minutes_of_hour = [start + dt.timedelta(minutes=i) for i in range(minutes)]
    counts: dict[dt.datetime, dict[str, int]] = {
        minute: {"succeeded": 0, "failed": 0, "dead": 0} for minute in minutes_of_hour}
    waits: dict[dt.datetime, list[float]] = {minute: [] for minute in minutes_of_hour}
    finished = (Job.objects.filter(finished_at__gte=start, state__in=[JobState.SUCCEEDED, JobState.DEAD])
                .annotate(minute=TruncMinute("finished_at")).order_by().values_list("minute", "state")
                .annotate(count=Count("id")))
    for minute, state, count in finished:
        counts.get(minute, {})[state] = count
    failed_states = [AttemptState.FAILED, AttemptState.LOST]
    failed = (JobAttempt.objects.filter(finished_at__gte=start, state__in=failed_states)
              .annotate(minute=TruncMinute("finished_at")).order_by().values_list("minute")
              .annotate(count=Count("id")))
    for minute, count in failed:
        counts.get(minute, {})["failed"] = count
    claims = (JobAttempt.objects.filter(finished_at__gte=start, claimed_at__gte=F("job__run_at"))
              .order_by("-finished_at").values_list("claimed_at", "job__run_at")[:sample])
    for claimed_at, run_at in claims:
        wait_s = (claimed_at - run_at).total_seconds()
        waits.get(claimed_at.replace(second=0, microsecond=0), []).append(wait_s)
    return [{"at": minute.isoformat(), **counts[minute], "claim_p95_s": _p95(waits[minute])}
            for minute in minutes_of_hour]


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, -(-len(ordered) * 95 // 100) - 1)], 2)


def succeeded_recently(*, now: dt.datetime | None = None, seconds: int = 60,
                       most: int = 5000) -> list[dt.datetime]:
    """When each job that succeeded in the last `seconds` finished (the monitor's "last minute" tile)."""
    since = (now or clock_now()) - dt.timedelta(seconds=seconds)
    times = (Job.objects.filter(state=JobState.SUCCEEDED, finished_at__gte=since)
             .order_by("-finished_at").values_list("finished_at", flat=True)[:most])
    return [at for at in times if at is not None]
