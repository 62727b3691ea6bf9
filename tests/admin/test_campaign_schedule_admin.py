"""Recurring campaigns in admin: the schedule field, pause and resume, each run with its progress bar."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from core.models import StaffAction
from queueing.models import Campaign, CampaignRun
from queueing.services import campaign_schedules_run
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/admin/queueing/campaign/"


def add_form(provider, schedule: str) -> dict:
    return {"name": "Hourly cafes", "provider": provider.pk, "priority": 0, "queries": "coffee\ntea",
            "cities": "Riyadh", "schedule": schedule}


def test_staff_create_a_recurring_campaign_and_see_its_runs(clock, admin_client):
    provider = make_provider("maps")
    response = admin_client.post(f"{CAMPAIGNS}add/", add_form(provider, "every hour"))
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get()
    assert campaign.schedule == "every hour" and campaign.next_run_at is not None
    campaign_schedules_run()
    clock.shift(dt.timedelta(hours=1))
    campaign_schedules_run()

    page = admin_client.get(reverse("admin:queueing_campaign_change", args=[campaign.pk])).content.decode()
    assert "0 of 2 jobs finished" in page  # run 1's own progress bar
    assert "Skipped: run 1 still has 2 queued or leased job(s)." in page
    assert "every hour" in admin_client.get(CAMPAIGNS).content.decode()


def test_a_bad_schedule_is_refused_by_the_form(admin_client):
    provider = make_provider("maps")
    response = admin_client.post(f"{CAMPAIGNS}add/", add_form(provider, "every blue moon"))
    assert response.status_code == 200
    assert "every N hours" in response.content.decode()
    assert not Campaign.objects.exists()


def test_pause_and_resume_actions_are_audited(clock, admin_client):
    provider = make_provider("maps")
    admin_client.post(f"{CAMPAIGNS}add/", add_form(provider, "every 2 hours"))
    campaign = Campaign.objects.get()

    admin_client.post(CAMPAIGNS, {"action": "pause_schedule", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.schedule_paused and campaign.next_run_at is None
    clock.shift(dt.timedelta(hours=3))
    assert campaign_schedules_run() == []
    assert "every 2 hours (paused)" in admin_client.get(CAMPAIGNS, {"recurring": "paused"}).content.decode()

    admin_client.post(CAMPAIGNS, {"action": "resume_schedule", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert not campaign.schedule_paused and campaign.next_run_at is not None
    assert len(campaign_schedules_run()) == 1
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1
    actions = list(StaffAction.objects.filter(object_type="queueing.campaign").values_list("action", flat=True))
    assert {"campaign.create", "campaign.schedule_pause", "campaign.schedule_resume", "campaign.run"} <= set(actions)


def hourly_campaign_after_its_first_run(admin_client) -> tuple[Campaign, str]:
    """An hourly campaign added in admin and run once; its change page."""
    admin_client.post(f"{CAMPAIGNS}add/", add_form(make_provider("maps"), "every hour"))
    campaign = Campaign.objects.get()
    campaign_schedules_run()
    return campaign, reverse("admin:queueing_campaign_change", args=[campaign.pk])


def test_changing_the_schedule_of_an_enqueued_campaign_is_audited(clock, admin_client):
    campaign, url = hourly_campaign_after_its_first_run(admin_client)
    response = admin_client.post(url, {"schedule": "0 6 * * *"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.schedule == "0 6 * * *"
    update = StaffAction.objects.get(action="campaign.update")
    assert update.changes["schedule"] == ["every hour", "0 6 * * *"] and "next_run_at" in update.changes


def test_the_schedule_stays_editable_after_the_first_run(clock, admin_client):
    _, url = hourly_campaign_after_its_first_run(admin_client)
    form = admin_client.get(url).context["adminform"].form
    assert "schedule" in form.fields and "queries" not in form.fields
