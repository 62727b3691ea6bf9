"""Campaign runs: every enqueueing of a campaign, manual or by its schedule, and pause / resume.

A recurring campaign is due when `next_run_at` has passed. The tick (a periodic task, once a
minute) takes each due campaign under its row lock, so two ticks never run one due time twice, and
either enqueues the queries x cities as a new run or, while the previous run still has queued or
leased jobs, records a skipped run with a note. Every run is audited (core/audit.py) under the
actor `schedule:campaigns`; the pause and resume of staff under their own name.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import Max
from django.utils.timezone import now as clock_now

from core.audit import Actor, staff_action_record
from queueing.models import Campaign, CampaignRun, CampaignRunTrigger, Job, JobState
from queueing.schedule import schedule_parse
from queueing.services.enqueue import CAMPAIGN_TYPE, campaign_run_enqueue

logger = logging.getLogger("queueing.services")

SCHEDULE_ACTOR = Actor.command("schedule:campaigns")
SKIP_NOTE = "Skipped: run {number} still has {pending} queued or leased job(s)."


def campaign_next_run(*, campaign: Campaign, now: dt.datetime, previous_due: dt.datetime | None = None
                      ) -> dt.datetime | None:
    """When the campaign is next due (None: no schedule)."""
    if not campaign.schedule.strip():
        return None
    return schedule_parse(campaign.schedule).next_after(now, previous_due=previous_due)


def _run_pending(campaign: Campaign) -> tuple[CampaignRun | None, int]:
    """The last run that made jobs, and how many of its jobs are not finished."""
    last = campaign.runs.filter(skipped=False).order_by("-number").first()
    if last is None:
        return None, 0
    pending = Job.objects.filter(campaign_run=last, state__in=(JobState.QUEUED, JobState.LEASED)).count()
    return last, pending


def campaign_schedules_run(*, now: dt.datetime | None = None, limit: int = 100) -> list[CampaignRun]:
    """Run every recurring campaign that is due: a new run, or a skipped one with a note."""
    now = now or clock_now()
    done: list[CampaignRun] = []
    due_ids = list(
        Campaign.objects.filter(schedule_paused=False, next_run_at__lte=now).exclude(schedule="")
        .order_by("next_run_at").values_list("id", flat=True)[:limit]
    )
    for campaign_id in due_ids:
        with transaction.atomic():
            # Re-checked under the row lock: another tick may have taken this due time already.
            campaign = (Campaign.objects.select_for_update(of=("self",)).select_related("provider")
                        .filter(pk=campaign_id, schedule_paused=False, next_run_at__lte=now)
                        .exclude(schedule="").first())
            if campaign is None:
                continue
            due = campaign.next_run_at
            assert due is not None
            last, pending = _run_pending(campaign)
            if last is not None and pending:
                number = (campaign.runs.aggregate(last=Max("number"))["last"] or 0) + 1
                run = CampaignRun.objects.create(
                    campaign=campaign, number=number, trigger=CampaignRunTrigger.SCHEDULE, scheduled_for=due,
                    created_at=now, skipped=True, note=SKIP_NOTE.format(number=last.number, pending=pending))
                action = "campaign.run_skip"
            else:
                run = campaign_run_enqueue(campaign=campaign, trigger=CampaignRunTrigger.SCHEDULE,
                                           scheduled_for=due, now=now)
                action = "campaign.run"
            next_run_at = campaign_next_run(campaign=campaign, now=now, previous_due=due)
            Campaign.objects.filter(pk=campaign.pk).update(
                next_run_at=next_run_at, jobs_created=campaign.jobs_created + run.jobs_created,
                enqueued_at=campaign.enqueued_at or now)
            staff_action_record(
                actor=SCHEDULE_ACTOR, action=action, object_type=CAMPAIGN_TYPE, object_ids=[campaign.pk],
                detail={"run": run.number, "scheduled_for": due.isoformat(), "jobs_created": run.jobs_created,
                        "note": run.note, "next_run_at": next_run_at.isoformat() if next_run_at else None})
        outcome = "skipped (previous run still going)" if run.skipped else f"enqueued {run.jobs_created} jobs"
        logger.info("campaign %s: run %d %s", campaign.pk, run.number, outcome)
        done.append(run)
    return done


def campaign_schedule_pause(*, campaign_ids: list[int], actor: Actor) -> int:
    """Staff: stop the schedules of these campaigns; runs already enqueued carry on."""
    with transaction.atomic():
        ids = list(Campaign.objects.select_for_update().filter(pk__in=campaign_ids, schedule_paused=False)
                   .exclude(schedule="").values_list("id", flat=True))
        Campaign.objects.filter(pk__in=ids).update(schedule_paused=True, next_run_at=None)
        if ids:
            staff_action_record(actor=actor, action="campaign.schedule_pause", object_type=CAMPAIGN_TYPE,
                                object_ids=ids)
    return len(ids)


def campaign_schedule_resume(*, campaign_ids: list[int], actor: Actor, now: dt.datetime | None = None) -> int:
    """Staff: restart paused schedules from now (missed due times are not made up)."""
    now = now or clock_now()
    resumed = []
    with transaction.atomic():
        paused = Campaign.objects.select_for_update().filter(pk__in=campaign_ids, schedule_paused=True)
        for campaign in paused:
            if not campaign.schedule.strip():
                continue
            last_due = campaign.runs.aggregate(last=Max("scheduled_for"))["last"]
            next_run_at = campaign_next_run(campaign=campaign, now=now, previous_due=last_due)
            Campaign.objects.filter(pk=campaign.pk).update(schedule_paused=False, next_run_at=next_run_at)
            resumed.append(campaign.pk)
        if resumed:
            staff_action_record(actor=actor, action="campaign.schedule_resume", object_type=CAMPAIGN_TYPE,
                                object_ids=resumed)
    return len(resumed)
