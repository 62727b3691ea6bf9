"""Gate `breakers_dlq`: every provider with recent jobs has a working breaker policy; the dead-letter
queue does not grow too fast and holds nothing past its retention without a decision
(docs/PRODUCTION_READINESS.md, "breakers_dlq")."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from leadops.models import DataClass
from leadops.readiness.base import Gate, changelist_links, problems_line
from leadops.retention import retention_days
from queueing import selectors


def check(now: dt.datetime) -> Gate:
    evidence = changelist_links("queueing", breaker="Breakers", deadjob="Dead-letter queue",
                                provider="Providers")
    providers = selectors.providers_with_jobs_since(since=now - dt.timedelta(days=7))
    problems = [f"provider {name}: {why}" for name, why in
                sorted(selectors.breaker_policy_problems(providers=providers).items())]
    dlq = selectors.dlq_stats()
    limit = settings.LEADOPS_READINESS_DLQ_GROWTH_PER_HOUR
    if dlq["last_hour"] > limit:
        problems.append(f"the DLQ grew by {dlq['last_hour']} jobs in the last hour (limit {limit}): "
                        "read the dead jobs' errors")
    keep_days = retention_days().get(DataClass.DEAD_JOBS)
    if keep_days is not None:
        overdue = selectors.dead_jobs_finished_before(cutoff=now - dt.timedelta(days=keep_days))
        if overdue:
            problems.append(f"{overdue} dead job(s) older than their {keep_days}-day retention: requeue, "
                            "cancel or purge them (dlq requeue|purge, or purge_retention)")
    detail = {"providers": providers, "dlq_size": dlq["size"], "dlq_last_hour": dlq["last_hour"],
              "dlq_last_24h": dlq["last_24h"], "growth_limit_per_hour": limit}
    if problems:
        return Gate("breakers_dlq", False, problems_line(problems), evidence, detail)
    return Gate("breakers_dlq", True,
                f"{len(providers)} active provider(s) with breakers armed; DLQ {dlq['size']} "
                f"(+{dlq['last_hour']} in the last hour, limit {limit})", evidence, detail)
