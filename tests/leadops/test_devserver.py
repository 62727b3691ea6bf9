"""`make run`'s demo enqueues its work through a campaign, so its progress and the audit trail show."""

from __future__ import annotations

import pytest

from core.models import StaffAction
from leadops.devserver import top_up_demo_jobs
from queueing.models import Campaign, Job

pytestmark = pytest.mark.django_db


def test_demo_work_arrives_through_an_audited_campaign(admin_user):
    assert top_up_demo_jobs() == 30
    campaign = Campaign.objects.get()
    assert campaign.enqueued_at is not None and campaign.jobs_created == 30
    assert Job.objects.filter(campaign=campaign).count() == 30
    assert set(StaffAction.objects.values_list("action", flat=True)) == {"campaign.create", "campaign.enqueue"}
    # Enough work queued: no second campaign until the workers drain it.
    assert top_up_demo_jobs() == 0
    assert Campaign.objects.count() == 1
