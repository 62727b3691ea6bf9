"""On PostgreSQL, ticks running at the same moment make one run of one due time, never two."""

from __future__ import annotations

import threading

import pytest

from core.audit import Actor
from queueing.models import Campaign, CampaignRun, Job
from queueing.services import campaign_create, campaign_schedules_run
from tests.factories import make_provider
from tests.threads import run_in_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_concurrent_ticks_make_one_run():
    campaign = campaign_create(
        campaign=Campaign(name="Hourly", provider=make_provider("maps"), queries="coffee\ntea",
                          cities="Riyadh\nJeddah", schedule="every hour"),
        actor=Actor(name="ops", source="admin"))
    start = threading.Barrier(4)

    def tick() -> None:
        start.wait(10)
        campaign_schedules_run()

    run_in_threads(tick, [()] * 4, timeout=30)
    assert CampaignRun.objects.filter(campaign=campaign).count() == 1
    assert Job.objects.filter(campaign=campaign).count() == 4
