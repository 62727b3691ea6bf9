"""Reads of the job queue, for dashboards, admin and other apps."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.db.models import Count, Min, Q, QuerySet, Sum
from django.utils.timezone import now as clock_now

from queueing.models import (
    AttemptEvidence,
    AttemptState,
    Breaker,
    BreakerOutcome,
    BreakerState,
    CampaignRun,
    Job,
    JobAttempt,
    JobState,
    JobStateCount,
    Provider,
)


def enabled_provider_names() -> list[str]:
    return list(Provider.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))


def queue_depth_by_state_and_provider() -> list[dict]:
    """Rows of {provider__name, state, count}, one per non-empty pair, sorted by provider and state.

    The monitor page, its 30 s snapshot and /metrics read this on every view. Counting the jobs
    took 140 ms at 2,000,000 jobs; the counts are maintained by triggers in the statement of every
    change instead (queueing/services/counts.py), so this sums a few hundred delta rows.
    """
    names = dict(Provider.objects.values_list("id", "name"))
    return sorted(
        ({"provider__name": names.get(provider_id, str(provider_id)), "state": state, "count": count}
         for (provider_id, state), count in job_state_counts().items()),
        key=lambda row: (row["provider__name"], row["state"]),
    )


def job_state_counts() -> dict[tuple[int, str], int]:
    """Jobs per (provider id, state), from the maintained deltas (pairs with no jobs are left out)."""
    rows = JobStateCount.objects.order_by().values("provider_id", "state").annotate(count=Sum("delta"))
    return {(row["provider_id"], row["state"]): int(row["count"]) for row in rows if row["count"]}


def job_state_recount() -> dict[tuple[int, str], int]:
    """The same numbers counted from the jobs themselves (tests and the reconcile compare the two)."""
    rows = Job.objects.order_by().values("provider_id", "state").annotate(count=Count("*"))
    return {(row["provider_id"], row["state"]): row["count"] for row in rows}


def campaign_progress(*, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Succeeded / dead / cancelled / remaining jobs per campaign, in one query."""
    return _progress_by(Job.objects.filter(campaign_id__in=campaign_ids), "campaign_id")


def campaign_run_progress(*, campaign_id: int) -> dict[int, dict[str, int]]:
    """Succeeded / dead / cancelled / remaining jobs per run of one campaign, in one query."""
    jobs = Job.objects.filter(campaign_id=campaign_id, campaign_run__isnull=False)
    return _progress_by(jobs, "campaign_run_id")


def _progress_by(jobs: QuerySet[Job], key: str) -> dict[int, dict[str, int]]:
    rows = jobs.values(key).annotate(
        total=Count("id"),
        succeeded=Count("id", filter=Q(state=JobState.SUCCEEDED)),
        dead=Count("id", filter=Q(state=JobState.DEAD)),
        cancelled=Count("id", filter=Q(state=JobState.CANCELLED)),
    )
    progress = {}
    for row in rows:
        done = row["succeeded"] + row["dead"] + row["cancelled"]
        progress[row[key]] = {**row, "remaining": row["total"] - done}
    return progress


def campaign_runs_recent(*, campaign_id: int, limit: int = 100) -> list[CampaignRun]:
    """A campaign's latest runs, newest first (an hourly schedule makes 24 a day)."""
    return list(CampaignRun.objects.filter(campaign_id=campaign_id).order_by("-number")[:limit])


def queue_overview(*, now: dt.datetime | None = None) -> dict:
    """What the monitor page shows of the queue: depth by state and provider, last hour, DLQ."""

    now = now or clock_now()
    depth_rows = queue_depth_by_state_and_provider()
    states = [choice for choice, _ in JobState.choices]
    providers: dict[str, dict[str, int]] = {}
    totals = dict.fromkeys(states, 0)
    for row in depth_rows:
        per_state = providers.setdefault(row["provider__name"], dict.fromkeys(states, 0))
        per_state[row["state"]] = row["count"]
        totals[row["state"]] += row["count"]
    hour_ago = now - dt.timedelta(hours=1)
    finished = Job.objects.filter(finished_at__gte=hour_ago).aggregate(
        succeeded=Count("id", filter=Q(state=JobState.SUCCEEDED)),
        dead=Count("id", filter=Q(state=JobState.DEAD)),
    )
    return {
        "states": states,
        "totals": totals,
        "by_provider": [{"provider": name, **counts} for name, counts in sorted(providers.items())],
        "succeeded_last_hour": finished["succeeded"],
        "dead_last_hour": finished["dead"],
        "dlq_size": totals[JobState.DEAD],
        "stuck_leases": Job.objects.filter(state=JobState.LEASED, lease_expires_at__lt=now).count(),
    }


def worker_job_stats_24h(*, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
    """Attempts finished per worker in the last 24 hours: done, failed (failed or lease lost)."""


    since = (now or clock_now()) - dt.timedelta(hours=24)
    rows = (
        JobAttempt.objects.filter(finished_at__gte=since).values("worker_id").annotate(
            done=Count("id", filter=Q(state=AttemptState.SUCCEEDED)),
            failed=Count("id", filter=Q(state__in=[AttemptState.FAILED, AttemptState.LOST])),
        )
    )
    return {row["worker_id"]: {"done": row["done"], "failed": row["failed"]} for row in rows}


def dlq_stats(*, size: int | None = None) -> dict[str, int]:
    """DLQ size and growth: dead jobs now, and how many died in the last hour and 24 hours.

    The size comes from the maintained counts (or `size`, when the caller has just read them); the
    growth reads only the jobs finished in the last 24 hours (the finished_at index), never every
    dead job.
    """
    now = clock_now()
    if size is None:
        size = sum(count for (_, state), count in job_state_counts().items() if state == JobState.DEAD)
    recent = Job.objects.filter(state=JobState.DEAD, finished_at__gte=now - dt.timedelta(hours=24)).aggregate(
        last_hour=Count("id", filter=Q(finished_at__gte=now - dt.timedelta(hours=1))),
        last_24h=Count("id"),
    )
    return {"size": size, **recent}


def dead_jobs(*, provider: str | None = None) -> QuerySet[Job]:
    dead = Job.objects.filter(state=JobState.DEAD).select_related("provider").order_by("-finished_at", "-id")
    if provider:
        dead = dead.filter(provider__name=provider)
    return dead


def attempt_outcomes_since(*, since_by_worker: dict[str, dt.datetime]) -> dict[str, dict[str, int]]:
    """Finished attempts per worker since that worker's own instant: {worker_id: {done, failed}}.

    Read by the release health gates (docs/SYSTEM_OVERVIEW.md, "Releases read the queue"): the
    error rate of a version is the failed share of the attempts its workers finished after they
    installed it. `failed` counts failed and lost attempts, as `worker_job_stats_24h` does.
    """

    outcomes: dict[str, dict[str, int]] = {}
    for windows in _worker_windows(since_by_worker):
        rows = JobAttempt.objects.filter(windows).values("worker_id").annotate(
            done=Count("id", filter=Q(state=AttemptState.SUCCEEDED)),
            failed=Count("id", filter=Q(state__in=[AttemptState.FAILED, AttemptState.LOST])),
        ).order_by()
        for row in rows:
            outcomes[row["worker_id"]] = {"done": row["done"], "failed": row["failed"]}
    return outcomes


def _worker_windows(since_by_worker: dict[str, dt.datetime]) -> Iterator[Q]:
    """Attempts finished since each worker's own instant, as OR filters: each worker has its own
    window; a few hundred per query keeps the OR list reasonable."""
    items = list(since_by_worker.items())
    for start in range(0, len(items), 200):
        windows = Q()
        for worker_id, since in items[start:start + 200]:
            windows |= Q(worker_id=worker_id, finished_at__gte=since)
        yield windows


def attempt_yield_since(*, since_by_worker: dict[str, dt.datetime]) -> dict[str, dict[str, int]]:
    """What the workers' finished attempts produced since each worker's own instant, per provider.

    {provider: {finished, succeeded, zero, added, duplicates, invalid, blocked}}: `zero` counts
    succeeded attempts that reported no lead, `blocked` finished attempts that failed with the code
    `blocked` or kept a screenshot. Read by the release yield gate (docs/RELEASES.md, "Yield gate").
    """
    totals: dict[str, dict[str, int]] = {}
    for windows in _worker_windows(since_by_worker):
        succeeded = Q(state=AttemptState.SUCCEEDED)
        blocked = Q(error__code="blocked") | Q(evidence__isnull=False)
        rows = JobAttempt.objects.filter(windows, finished_at__isnull=False).values(
            "job__provider__name").annotate(
            finished=Count("id", distinct=True),
            succeeded=Count("id", filter=succeeded, distinct=True),
            zero=Count("id", filter=succeeded & Q(leads_added=0, leads_duplicates=0, leads_invalid=0),
                       distinct=True),
            blocked=Count("id", filter=blocked, distinct=True),
        ).order_by()
        sums = JobAttempt.objects.filter(windows, finished_at__isnull=False).values(
            "job__provider__name").annotate(
            added=Sum("leads_added"), duplicates=Sum("leads_duplicates"), invalid=Sum("leads_invalid"),
        ).order_by()
        for row in rows:
            into = totals.setdefault(row["job__provider__name"], dict.fromkeys(
                ("finished", "succeeded", "zero", "added", "duplicates", "invalid", "blocked"), 0))
            into["finished"] += row["finished"]
            into["succeeded"] += row["succeeded"]
            into["zero"] += row["zero"]
            into["blocked"] += row["blocked"]
        for total in sums:
            into = totals[total["job__provider__name"]]
            into["added"] += int(total["added"] or 0)
            into["duplicates"] += int(total["duplicates"] or 0)
            into["invalid"] += int(total["invalid"] or 0)
    return totals


# Reads for the alert rules (alerts reads the queue only through these). Each is one aggregate query.


def report_outcomes_since(*, since: dt.datetime) -> list[tuple[str, str, int, int]]:
    """(scope, key, successes, failures) of report outcomes since `since`, per provider and per worker.

    Read from the breaker's outcome buckets, which every finished report feeds for both scopes.
    """


    rows = (
        BreakerOutcome.objects.filter(bucket__gte=since).values("scope", "key")
        .annotate(successes=Sum("successes"), failures=Sum("failures")).order_by("scope", "key")
    )
    return [(row["scope"], row["key"], int(row["successes"] or 0), int(row["failures"] or 0)) for row in rows]


def failed_attempts_by_provider(*, since: dt.datetime) -> dict[str, int]:
    """Attempts that failed (each one a retry or a death) since `since`, per provider name."""

    rows = (
        JobAttempt.objects.filter(finished_at__gte=since, state=AttemptState.FAILED)
        .values("job__provider__name").annotate(count=Count("id")).order_by()
    )
    return {row["job__provider__name"]: row["count"] for row in rows}


def dead_jobs_by_provider(*, since: dt.datetime) -> dict[str, int]:
    """Jobs that reached the dead-letter queue since `since`, per provider name."""
    rows = (
        Job.objects.filter(state=JobState.DEAD, finished_at__gte=since)
        .values("provider__name").annotate(count=Count("id")).order_by()
    )
    return {row["provider__name"]: row["count"] for row in rows}


def stuck_jobs_by_provider(*, now: dt.datetime, grace_s: float) -> dict[str, dict[str, int]]:
    """Per provider: jobs leased past their lease + `grace_s`, and ready jobs unclaimed for `grace_s`.

    Only enabled providers count as unclaimed: a disabled provider's queue waits on purpose.
    """
    cutoff = now - dt.timedelta(seconds=grace_s)
    rows = (
        Job.objects.filter(
            Q(state=JobState.LEASED, lease_expires_at__lt=cutoff)
            | Q(state=JobState.QUEUED, run_at__lt=cutoff, provider__enabled=True)
        )
        .values("provider__name")
        .annotate(leased=Count("id", filter=Q(state=JobState.LEASED)),
                  unclaimed=Count("id", filter=Q(state=JobState.QUEUED)))
        .order_by()
    )
    return {row["provider__name"]: {"leased": row["leased"], "unclaimed": row["unclaimed"]} for row in rows}


def breakers_open() -> list[tuple[str, str, dt.datetime | None]]:
    """(scope, key, opened_at) of every breaker that is open now."""

    return list(Breaker.objects.filter(state=BreakerState.OPEN).order_by("scope", "key")
                .values_list("scope", "key", "opened_at"))


def succeeded_attempts_by_provider(*, since: dt.datetime) -> dict[str, dict[str, int]]:
    """Per provider: attempts that succeeded since `since` and the leads they added."""


    rows = (
        JobAttempt.objects.filter(finished_at__gte=since, state=AttemptState.SUCCEEDED)
        .values("job__provider__name")
        .annotate(succeeded=Count("id"), added=Sum("leads_added")).order_by()
    )
    return {row["job__provider__name"]: {"succeeded": row["succeeded"], "added": int(row["added"] or 0)}
            for row in rows}


def failed_attempts_evidence(*, since: dt.datetime, provider: str | None = None, worker_id: str | None = None,
                             zero_results: bool = False, top: int = 5) -> dict[str, Any]:
    """What the failed attempts since `since` (of one provider or worker) have in common, for alerts.

    `reasons`: (error code, count) most common first; `releases`: (channel, version the worker
    reports, count); `workers`: (worker id, count); the newest screenshot's id and the newest attempt
    with a log tail. With `zero_results` the attempts are those that succeeded and added no lead.
    Codes and ids only: no error text, lead or log line (docs/RUNBOOK.md, "Alerts").
    """
    attempts = JobAttempt.objects.filter(finished_at__gte=since)
    if zero_results:
        attempts = attempts.filter(state=AttemptState.SUCCEEDED, leads_added=0)
    else:
        attempts = attempts.filter(state__in=[AttemptState.FAILED, AttemptState.LOST])
    if provider is not None:
        attempts = attempts.filter(job__provider__name=provider)
    if worker_id is not None:
        attempts = attempts.filter(worker_id=worker_id)
    reasons: dict[str, int] = {}
    for row in attempts.values("state", "error__code").annotate(count=Count("id")).order_by():
        code = row["error__code"] or ("no_results" if zero_results else "lease_lost")
        reasons[str(code)[:60]] = reasons.get(str(code)[:60], 0) + row["count"]
    releases = (attempts.values("worker__channel", "worker__reported_version").annotate(count=Count("id"))
                .order_by("-count", "worker__channel", "worker__reported_version")[:top])
    workers = (attempts.exclude(worker_id=None).values("worker_id").annotate(count=Count("id"))
               .order_by("-count", "worker_id")[:top])
    screenshot = (AttemptEvidence.objects.filter(attempt__in=attempts.values("id"))
                  .order_by("-created_at", "-id").values_list("id", flat=True).first())
    log_tail = attempts.exclude(log_tail="").order_by("-finished_at").values_list("id", flat=True).first()
    return {
        "attempts": sum(reasons.values()),
        "reasons": sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:top],
        "releases": [(row["worker__channel"] or "", row["worker__reported_version"] or "", row["count"])
                     for row in releases],
        "workers": [(row["worker_id"], row["count"]) for row in workers],
        "screenshot_id": str(screenshot) if screenshot else None,
        "log_tail_attempt_id": str(log_tail) if log_tail else None,
    }


def breaker_states() -> list[tuple[str, str, str]]:
    """(scope, key, state) of every breaker that ever left closed."""

    return list(Breaker.objects.order_by("scope", "key").values_list("scope", "key", "state"))


def evidence_of_attempt(*, attempt_id: uuid.UUID) -> list[AttemptEvidence]:
    return list(AttemptEvidence.objects.filter(attempt_id=attempt_id).order_by("created_at", "id"))


def evidence_of_job(*, job_id: int) -> list[AttemptEvidence]:
    """Every screenshot of a job's attempts, oldest first, with the attempt number to label it."""
    return list(AttemptEvidence.objects.filter(job_id=job_id).select_related("attempt")
                .order_by("created_at", "id"))


def log_tails_of_job(*, job_id: int) -> list[tuple[int, str]]:
    """(attempt number, log tail) of a job's attempts that sent one, oldest first."""

    return list(JobAttempt.objects.filter(job_id=job_id).exclude(log_tail="").order_by("number")
                .values_list("number", "log_tail"))


def evidence_get(*, evidence_id: uuid.UUID) -> AttemptEvidence | None:
    return AttemptEvidence.objects.filter(pk=evidence_id).first()


# ----- readiness (docs/PRODUCTION_READINESS.md, "breakers_dlq" and "throttling") ------------------

_UNFINISHED = (JobState.QUEUED, JobState.LEASED)


def providers_with_jobs_since(*, since: dt.datetime) -> list[str]:
    """Providers with unfinished jobs (from the maintained counts) or jobs finished since `since`."""
    counts = job_state_counts()
    ids = {provider_id for (provider_id, state), count in counts.items() if state in _UNFINISHED and count}
    # One EXISTS per other provider that holds jobs at all (a few), never a DISTINCT over a week of jobs.
    for provider_id in {provider_id for (provider_id, _), count in counts.items() if count} - ids:
        if Job.objects.filter(provider_id=provider_id, finished_at__gte=since).exists():
            ids.add(provider_id)
    return list(Provider.objects.filter(id__in=ids).order_by("name").values_list("name", flat=True))


def providers_with_jobs() -> list[str]:
    """Providers that hold any job at all (the maintained counts: no scan of the job table)."""
    ids = {provider_id for (provider_id, _), count in job_state_counts().items() if count}
    return list(Provider.objects.filter(id__in=ids).order_by("name").values_list("name", flat=True))


def breaker_policy_problems(*, providers: list[str]) -> dict[str, str]:
    """Per provider whose breaker would not protect it: why (an invalid policy, or held by staff)."""
    from django.core.exceptions import ValidationError

    from queueing.models import Breaker, BreakerScope

    problems: dict[str, str] = {}
    for provider in Provider.objects.filter(name__in=providers):
        try:
            provider.clean_fields(exclude=[f.name for f in Provider._meta.fields
                                           if not f.name.startswith("breaker_")])
        except ValidationError as exc:
            problems[provider.name] = f"breaker settings invalid ({', '.join(sorted(exc.message_dict))})"
    held = Breaker.objects.filter(scope=BreakerScope.PROVIDER, key__in=providers, forced=True)
    for key, state in held.values_list("key", "state"):
        problems.setdefault(key, f"breaker held {state} by staff")
    return problems


def dead_jobs_finished_before(*, cutoff: dt.datetime) -> int:
    """Dead jobs nobody requeued, cancelled or purged although they died before `cutoff`."""
    return Job.objects.filter(state=JobState.DEAD, finished_at__lt=cutoff).count()


def dlq_counts_by_provider_and_reason() -> list[dict[str, Any]]:
    """Dead jobs per provider, reason and error code (the evidence pack's DLQ counters)."""
    rows = (Job.objects.filter(state=JobState.DEAD).order_by()
            .values("provider__name", "dead_reason", "last_error__code").annotate(count=Count("id")))
    return sorted(({"provider": row["provider__name"], "reason": row["dead_reason"],
                    "error": row["last_error__code"] or "", "count": row["count"]} for row in rows),
                  key=lambda row: (row["provider"], row["reason"], str(row["error"])))


def provider_quotas() -> list[dict[str, Any]]:
    """Every provider's quota settings and today's use (the throttling gate and its evidence)."""
    from queueing.models import ProviderQuotaState

    used = {state.provider_id: (state.day, state.day_count) for state in ProviderQuotaState.objects.all()}
    rows = []
    for provider in Provider.objects.order_by("name"):
        day, count = used.get(provider.pk, (None, 0))
        rows.append({"provider": provider.name, "enabled": provider.enabled,
                     "quota_per_min": provider.quota_per_min, "burst": provider.quota_burst,
                     "daily_cap": provider.daily_cap,
                     "used_day": day.isoformat() if day else None, "used_that_day": count})
    return rows


def breaker_rows() -> list[dict[str, Any]]:
    """Every breaker that ever left closed, with its state and when (the evidence pack)."""
    from queueing.models import Breaker

    return [{"scope": b.scope, "key": b.key, "state": b.state, "forced": b.forced,
             "opened_at": b.opened_at.isoformat() if b.opened_at else None,
             "updated_at": b.updated_at.isoformat()}
            for b in Breaker.objects.order_by("scope", "key")]


# ----- when the retention policy purges each dead job (docs/PRIVACY.md, "Retention") -------------
# Dead jobs are one retention class, `dead_jobs`: `purge_retention` deletes a dead job that many days
# after it died. The policy lives in the project package, which queueing may not import: the project
# hands its reader in at start-up (leadops/apps.py), the way the readiness reader reaches the alerts.

RetentionReader = Callable[[], int | None]
_reader: RetentionReader | None = None


def dead_job_retention_register(reader: RetentionReader) -> None:
    """Set the function that returns the `dead_jobs` retention days (None: kept until staff act)."""
    global _reader
    _reader = reader


def dead_job_retention_days() -> int | None:
    """The days a dead job is kept before the purge deletes it; None when no policy applies."""
    return None if _reader is None else _reader()


def dead_job_purge_at(*, finished_at: dt.datetime | None, days: int | None) -> dt.datetime | None:
    """The moment from which `purge_retention` deletes a job that died at `finished_at`."""
    if days is None or finished_at is None:
        return None
    return finished_at + dt.timedelta(days=days)


def dead_jobs_purge_due_by_provider(*, now: dt.datetime,
                                    within: dt.timedelta) -> dict[str, tuple[int, dt.datetime]]:
    """Per provider: dead jobs the purge may delete before `now + within`, and the first one's purge time."""
    days = dead_job_retention_days()
    if days is None:
        return {}
    # A job is purged once finished_at < run time - days, so it is due when finished_at < now + within - days.
    keep = dt.timedelta(days=days)
    rows = (Job.objects.filter(state=JobState.DEAD, finished_at__lt=now + within - keep)
            .values("provider__name").annotate(count=Count("id"), first=Min("finished_at")).order_by())
    return {row["provider__name"]: (row["count"], row["first"] + keep) for row in rows}
