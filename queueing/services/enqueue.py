"""Backoff, providers and their policy, enqueueing jobs and campaigns."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils.timezone import now as clock_now

from core import events
from core.audit import Actor, audited_update, field_changes, field_values, staff_action_record
from core.errors import Conflict
from queueing.models import (
    Campaign,
    CampaignRun,
    CampaignRunTrigger,
    Job,
    JobState,
    Provider,
)
from queueing.schedule import schedule_parse
from queueing.wakeup import jobs_ready_announce

logger = logging.getLogger("queueing.services")  # one logger name for the whole package


def backoff_delay_s(*, attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """d = min(cap, base * 2**(attempt-1)), then wait d/2 + random(0, d/2).

    The formula and its defaults: docs/SYSTEM_OVERVIEW.md, "Semantics".
    """
    exponent = max(0, attempt - 1)
    # Cap the exponent before computing 2**n so a huge attempt number cannot overflow a float.
    d = float(cap_s) if exponent >= 62 else min(float(cap_s), float(base_s) * (2**exponent))
    return d / 2 + (rng or random).uniform(0, d / 2)


def provider_get_or_create(*, name: str) -> Provider:
    provider = Provider.objects.filter(name=name).first()
    if provider is not None:
        return provider
    candidate = Provider(name=name)
    candidate.full_clean()
    try:
        with transaction.atomic():
            candidate.save(force_insert=True)
    except IntegrityError:
        return Provider.objects.get(name=name)
    return candidate


def provider_policy_set(
    *, name: str, enabled: bool | None = None, max_attempts: int | None = None,
    lease_seconds: int | None = None, quota_per_min: int | None = None, quota_burst: int | None = None,
    daily_cap: int | None = None, actor: Actor | None = None,
) -> tuple[Provider, bool]:
    """Create or change a provider's policy; a quota or cap of 0 removes it. Returns (provider, created)."""
    with transaction.atomic():
        provider = Provider.objects.select_for_update().filter(name=name).first()
        created = provider is None
        if provider is None:
            provider = Provider(name=name)
        before = field_values(provider, _POLICY_FIELDS)
        if created:
            before = dict.fromkeys(_POLICY_FIELDS)
        changes = {"enabled": enabled, "max_attempts": max_attempts, "lease_seconds": lease_seconds,
                   "quota_burst": quota_burst}
        for field, value in changes.items():
            if value is not None:
                setattr(provider, field, value)
        if quota_per_min is not None:
            provider.quota_per_min = quota_per_min or None
        if daily_cap is not None:
            provider.daily_cap = daily_cap or None
        provider.full_clean()
        provider.save()
        changed = field_changes(before, provider)
        if changed and actor is not None:
            staff_action_record(actor=actor, action="provider.create" if created else "provider.policy_set",
                                object_type=PROVIDER_TYPE, object_ids=[provider.name], changes=changed)
    if changed:
        logger.info("provider %s %s: %s", name, "created" if created else "changed",
                    ", ".join(f"{field} {old!r} -> {new!r}" for field, (old, new) in changed.items()))
    return provider, created


_POLICY_FIELDS = ("enabled", "max_attempts", "lease_seconds", "quota_per_min", "quota_burst", "daily_cap")
PROVIDER_TYPE = "queueing.provider"
CAMPAIGN_TYPE = "queueing.campaign"


def provider_update(*, provider: Provider, values: dict[str, Any], actor: Actor) -> dict[str, list[Any]]:
    """Staff: change a provider's settings (admin form or changelist); return {field: [before, after]}."""
    return audited_update(instance=provider, values=values, actor=actor, action="provider.update",
                          object_type=PROVIDER_TYPE, clean=True)


def campaign_create(*, campaign: Campaign, actor: Actor) -> Campaign:
    """Staff: save a new campaign; a draft until enqueued, or until its schedule is first due."""
    with transaction.atomic():
        campaign.created_by_id = actor.user_id
        campaign.next_run_at = _next_run_at(campaign.schedule, paused=campaign.schedule_paused)
        campaign.save(force_insert=True)
        staff_action_record(actor=actor, action="campaign.create", object_type=CAMPAIGN_TYPE,
                            object_ids=[campaign.pk],
                            detail={"name": campaign.name,
                                    **({"schedule": campaign.schedule} if campaign.schedule else {})})
    return campaign


def campaign_update(*, campaign: Campaign, values: dict[str, Any], actor: Actor) -> dict[str, list[Any]]:
    """Staff: change a campaign's fields; `enqueued_at` and `jobs_created` belong to campaign_enqueue.

    A new schedule is due from now on ("every N hours": at the next tick; cron: its next instant).
    """
    if "schedule" in values:
        values = {**values, "next_run_at": _next_run_at(values["schedule"], paused=campaign.schedule_paused)}
    return audited_update(instance=campaign, values=values, actor=actor, action="campaign.update",
                          object_type=CAMPAIGN_TYPE)


def _next_run_at(schedule: str, *, paused: bool) -> dt.datetime | None:
    if paused or not schedule.strip():
        return None
    return schedule_parse(schedule).next_after(clock_now())


def jobs_enqueue(
    *, provider: Provider, payloads: Sequence[dict[str, Any]], priority: int = 0,
    campaign: Campaign | None = None, run_at: dt.datetime | None = None, actor: Actor | None = None,
    campaign_run: CampaignRun | None = None,
) -> list[Job]:
    """Create queued jobs, ready at `run_at` (now by default); the monitor hears of them on commit."""
    at = run_at or clock_now()
    jobs = [
        Job(provider=provider, campaign=campaign, campaign_run=campaign_run, payload=payload,
            priority=priority, run_at=at, max_attempts=provider.max_attempts, state=JobState.QUEUED)
        for payload in payloads
    ]
    with events.atomic():
        created = Job.objects.bulk_create(jobs, batch_size=1000)
        if created:
            jobs_ready_announce()
            events.publish("jobs.moved", action="jobs.enqueue", provider=provider.name, from_state="",
                           to_state=JobState.QUEUED, count=len(created))
        if actor is not None and created:
            staff_action_record(actor=actor, action="jobs.enqueue", object_type="queueing.job",
                                object_ids=[job.pk for job in created],
                                detail={"provider": provider.name, "priority": priority})
    return created


def campaign_run_enqueue(*, campaign: Campaign, trigger: str, scheduled_for: dt.datetime,
                         now: dt.datetime) -> CampaignRun:
    """Enqueue one run of the campaign's queries x cities (inside a transaction that holds its row)."""
    number = (campaign.runs.aggregate(last=Max("number"))["last"] or 0) + 1
    run = CampaignRun.objects.create(campaign=campaign, number=number, trigger=trigger,
                                     scheduled_for=scheduled_for, created_at=now)
    payloads = [
        {"query": query, "city": city, "campaign": campaign.pk}
        for query in campaign.query_list() for city in campaign.city_list()
    ]
    jobs = jobs_enqueue(provider=campaign.provider, payloads=payloads, priority=campaign.priority,
                        campaign=campaign, campaign_run=run)
    run.jobs_created = len(jobs)
    run.save(update_fields=["jobs_created"])
    return run


def campaign_enqueue(*, campaign: Campaign, actor: Actor | None = None) -> int:
    """Turn a campaign into one job per (query, city), as its run 1; staff enqueue a campaign once.

    A recurring campaign's later runs come from its schedule (queueing/services/campaign_runs.py).
    """
    now = clock_now()
    with transaction.atomic():
        claimed = Campaign.objects.filter(pk=campaign.pk, enqueued_at__isnull=True).update(enqueued_at=now)
        if not claimed:
            raise Conflict("This campaign was already enqueued.", code="campaign_already_enqueued")
        campaign = (Campaign.objects.select_for_update(of=("self",)).select_related("provider")
                    .get(pk=campaign.pk))
        run = campaign_run_enqueue(campaign=campaign, trigger=CampaignRunTrigger.MANUAL, scheduled_for=now,
                                   now=now)
        Campaign.objects.filter(pk=campaign.pk).update(jobs_created=F("jobs_created") + run.jobs_created)
        if actor is not None:
            staff_action_record(actor=actor, action="campaign.enqueue", object_type=CAMPAIGN_TYPE,
                                object_ids=[campaign.pk], detail={"jobs_created": run.jobs_created})
    return run.jobs_created
