"""A model's text from its `str_format` (core.models.Described) reads as the f-string it replaced."""

import datetime as dt

from django.utils import timezone

from alerts.models import Receiver
from core.models import RateLimitState
from queueing.models import JobAttempt, JobStateCount
from releases_app.models import Channel, Release, ReleaseState, Rollout, RolloutState
from workers_mgmt.models import EnrollmentToken, Worker


def test_fields_attributes_of_related_rows_and_format_specs():
    release = Release(version="2.4.0", state=ReleaseState.READY)
    assert str(release) == "2.4.0 (ready)"
    assert str(Channel(name="stable")) == "stable"
    rollout = Rollout(release=release, channel=Channel(name="beta"), state=RolloutState.PAUSED)
    assert str(rollout) == "2.4.0 on beta (paused)"
    assert str(JobAttempt(number=2, job_id=7)) == "attempt 2 of job 7"
    assert str(JobStateCount(provider_id=3, state="dead", delta=-4)) == "provider 3 dead -4"
    at = timezone.make_aware(dt.datetime(2026, 5, 1, 9, 30))
    assert str(EnrollmentToken(worker_id="w-1", expires_at=at)) == "enrollment of w-1 (expires 2026-05-01 09:30)"
    assert str(Worker(id="w-2")) == "w-2"
    assert str(RateLimitState(key="ip:1")) == "ip:1"
    assert str(Receiver(name="ops mail")) == "ops mail"
