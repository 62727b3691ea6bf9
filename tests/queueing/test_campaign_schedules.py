"""Recurring campaigns: runs on a schedule, skipped while the last one is going, pause and resume."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.audit import Actor
from core.models import StaffAction
from queueing.models import Campaign, CampaignRun, Job, JobState
from queueing.schedule import schedule_parse
from queueing.services import (
    campaign_create,
    campaign_enqueue,
    campaign_schedule_pause,
    campaign_schedule_resume,
    campaign_schedules_run,
    campaign_update,
    job_report,
    jobs_pull,
)
from tests.factories import make_provider, make_worker

pytestmark = pytest.mark.django_db

STAFF = Actor(name="ops", source="admin")


def recurring(schedule: str = "every hour", **fields) -> Campaign:
    campaign = Campaign(name="Cafes hourly", provider=make_provider("maps"), queries="coffee\ntea",
                        cities="Riyadh", schedule=schedule, **fields)
    return campaign_create(campaign=campaign, actor=STAFF)


def finish_all(worker) -> None:
    """A worker takes every ready job and reports it succeeded (the run is then over)."""
    while claims := jobs_pull(worker=worker, max_jobs=50).claims:
        for claim in claims:
            job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome="succeeded",
                       leads=[], error=None, idempotency_key=str(uuid.uuid4()), request_hash=uuid.uuid4().hex)


def test_every_hour_makes_one_run_per_hour_under_a_moved_clock(clock):
    worker, _ = make_worker(worker_id="w-sched")
    campaign = recurring("every hour")
    start = timezone.now()
    # Five hours, the tick running every ten minutes as the periodic task would (it runs each
    # minute; ten keeps the test quick and changes nothing: due times are what count).
    for _ in range(5 * 6):
        campaign_schedules_run()
        finish_all(worker)
        clock.shift(dt.timedelta(minutes=10))
    runs = list(CampaignRun.objects.filter(campaign=campaign).order_by("number"))
    assert [run.scheduled_for for run in runs] == [start + dt.timedelta(hours=hours) for hours in range(5)]
    assert all(not run.skipped and run.jobs_created == 2 for run in runs)
    assert Job.objects.filter(campaign=campaign).count() == 10
    for run in runs:
        assert set(Job.objects.filter(campaign_run=run).values_list("payload__query", flat=True)) == {"coffee", "tea"}


def test_a_run_is_skipped_with_a_note_while_the_previous_one_is_still_going(clock):
    worker, _ = make_worker(worker_id="w-sched")
    campaign = recurring("every hour")
    first, = campaign_schedules_run()
    assert first.jobs_created == 2

    clock.shift(dt.timedelta(hours=1))
    skipped, = campaign_schedules_run()
    assert skipped.skipped and skipped.jobs_created == 0
    assert skipped.note == "Skipped: run 1 still has 2 queued or leased job(s)."
    assert Job.objects.filter(campaign=campaign).count() == 2  # nothing new while run 1 is going

    clock.shift(dt.timedelta(minutes=30))
    assert campaign_schedules_run() == []  # not due again until the next hour
    finish_all(worker)
    clock.shift(dt.timedelta(minutes=30))
    third, = campaign_schedules_run()
    assert not third.skipped and third.number == 3 and third.jobs_created == 2


def test_a_leased_job_keeps_the_run_going(clock):
    worker, _ = make_worker(worker_id="w-sched")
    recurring("every hour")
    campaign_schedules_run()
    jobs_pull(worker=worker, max_jobs=50)  # both leased, neither reported
    clock.shift(dt.timedelta(hours=1))
    run, = campaign_schedules_run()
    assert run.skipped and "2 queued or leased" in run.note


def test_every_run_is_audited(clock):
    campaign = recurring("every 2 hours")
    campaign_schedules_run()
    clock.shift(dt.timedelta(hours=2))
    campaign_schedules_run()
    rows = list(StaffAction.objects.filter(object_type="queueing.campaign", action__startswith="campaign.run")
                .order_by("id"))
    assert [row.action for row in rows] == ["campaign.run", "campaign.run_skip"]
    assert rows[0].actor_name == "command:schedule:campaigns"
    assert rows[0].object_ids == str(campaign.pk)
    assert rows[0].detail["jobs_created"] == 2 and rows[1].detail["note"].startswith("Skipped")


def test_two_ticks_at_the_same_due_time_make_one_run(clock):
    recurring("every hour")
    campaign_schedules_run()
    assert campaign_schedules_run() == []
    assert CampaignRun.objects.count() == 1


def test_pause_stops_runs_and_resume_does_not_make_up_missed_ones(clock):
    worker, _ = make_worker(worker_id="w-sched")
    campaign = recurring("every hour")
    campaign_schedules_run()
    finish_all(worker)
    assert campaign_schedule_pause(campaign_ids=[campaign.pk], actor=STAFF) == 1
    clock.shift(dt.timedelta(hours=5))
    assert campaign_schedules_run() == []

    assert campaign_schedule_resume(campaign_ids=[campaign.pk], actor=STAFF) == 1
    campaign.refresh_from_db()
    assert not campaign.schedule_paused
    # Due again at the next beat of the hourly schedule, not five times at once.
    assert timezone.now() < campaign.next_run_at <= timezone.now() + dt.timedelta(hours=1)
    clock.move_to(campaign.next_run_at)
    assert len(campaign_schedules_run()) == 1
    actions = set(StaffAction.objects.filter(actor_name="ops").values_list("action", flat=True))
    assert {"campaign.schedule_pause", "campaign.schedule_resume"} <= actions


def test_cron_is_read_in_the_portals_time_zone(clock):
    campaign = recurring("0 6 * * *")
    local = campaign.next_run_at.astimezone(zoneinfo.ZoneInfo(settings.TIME_ZONE))
    assert (local.hour, local.minute) == (6, 0)
    assert timezone.now() < campaign.next_run_at <= timezone.now() + dt.timedelta(days=1)
    assert campaign_schedules_run() == []
    clock.move_to(campaign.next_run_at)
    run, = campaign_schedules_run()
    assert run.scheduled_for == campaign.next_run_at
    campaign.refresh_from_db()
    assert campaign.next_run_at == run.scheduled_for + dt.timedelta(days=1)


def test_a_manual_enqueue_is_run_one_and_holds_back_the_schedule(clock):
    campaign = recurring("every hour", schedule_paused=False)
    assert campaign_enqueue(campaign=campaign, actor=STAFF) == 2
    run, = campaign_schedules_run()
    assert run.number == 2 and run.skipped  # run 1 (manual) is still going


def test_a_campaign_without_a_schedule_never_runs_by_itself(clock):
    campaign = recurring("")
    assert campaign.next_run_at is None
    clock.shift(dt.timedelta(days=2))
    assert campaign_schedules_run() == []


def test_setting_a_schedule_later_makes_it_due(clock):
    campaign = recurring("")
    campaign_update(campaign=campaign, values={"schedule": "every 3 hours"}, actor=STAFF)
    campaign.refresh_from_db()
    assert campaign.next_run_at == timezone.now()
    assert len(campaign_schedules_run()) == 1


@pytest.mark.parametrize("text, hours", [("every hour", 1), ("every 1 hour", 1), ("Every 6 hours", 6),
                                          ("every  24 hours", 24)])
def test_every_n_hours_is_understood(text, hours):
    assert schedule_parse(text).every_hours == hours


@pytest.mark.parametrize("text", ["every 0 hours", "every 1000 hours", "hourly", "61 * * * *", "* * *",
                                  "every minute", "0 6 * * * *"])
def test_a_bad_schedule_is_refused_with_a_message(text):
    with pytest.raises(ValidationError):
        schedule_parse(text)
    campaign = Campaign(name="x", provider=make_provider("maps"), queries="q", cities="c", schedule=text)
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean()
    assert "schedule" in refused.value.message_dict


def test_an_unfinished_run_counts_only_queued_and_leased(clock):
    worker, _ = make_worker(worker_id="w-sched")
    campaign = recurring("every hour")
    campaign_schedules_run()
    finish_all(worker)
    Job.objects.filter(campaign=campaign).update(state=JobState.DEAD)
    clock.shift(dt.timedelta(hours=1))
    run, = campaign_schedules_run()
    assert not run.skipped
