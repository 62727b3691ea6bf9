"""`make run`'s demo enqueues its work through a campaign, so its progress and the audit trail show;
it is logged as the demo, never as the signed-in admin."""

from __future__ import annotations

import pytest

from core.models import StaffAction
from leadops.demo import demo_jobs_top_up as top_up_demo_jobs
from queueing.models import Campaign, Job

pytestmark = pytest.mark.django_db


def test_demo_work_arrives_through_an_audited_campaign(admin_user):
    assert top_up_demo_jobs() == 30
    campaign = Campaign.objects.get()
    assert campaign.enqueued_at is not None and campaign.jobs_created == 30
    assert Job.objects.filter(campaign=campaign).count() == 30
    assert set(StaffAction.objects.values_list("action", flat=True)) == {"campaign.create", "campaign.enqueue"}
    assert set(StaffAction.objects.values_list("actor_name", flat=True)) == {"demo"}
    # Enough work queued: no second campaign until the workers drain it.
    assert top_up_demo_jobs() == 0
    assert Campaign.objects.count() == 1


def test_demo_shows_some_gates_holding_and_the_others_saying_why(admin_user, settings, tmp_path):
    from leadops.devserver import demo_readiness_seed, demo_updaters
    from releases_app.demo import demo_rollout_seed

    settings.MEDIA_ROOT = str(tmp_path / "media")
    top_up_demo_jobs()
    updaters = demo_updaters()
    demo_rollout_seed(canary=updaters[0][0])

    gates = {name: (ok, why) for name, ok, why in demo_readiness_seed()}

    assert {name for name, (ok, _) in gates.items() if ok} == {"secrets", "breakers_dlq", "privacy", "throttling"}
    assert "channel demo: the rollout of demo-" in gates["updates"][1]
    assert "alert_receiver_set" in gates["alerts"][1]
