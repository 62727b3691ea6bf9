"""Dead jobs never vanish unannounced: one retention class, its date on the DLQ page, an alert before the purge."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertState, RuleKind
from alerts.services import alerts_evaluate
from core.audit import Actor
from leadops.models import DataClass, RetentionPolicy
from leadops.retention import retention_purge
from queueing.models import Job, JobState
from tests.factories import make_jobs, make_provider

pytestmark = pytest.mark.django_db


def _dead(provider: str, *, died: dt.datetime) -> Job:
    job = make_jobs(1, provider=make_provider(provider))[0]
    Job.objects.filter(pk=job.pk).update(state=JobState.DEAD, finished_at=died, dead_reason="max_attempts")
    return Job.objects.get(pk=job.pk)


def test_dlq_page_shows_the_date_the_retention_purge_deletes_each_dead_job(admin_client):
    RetentionPolicy.objects.filter(data_class=DataClass.DEAD_JOBS).update(days=30)
    died = timezone.now() - dt.timedelta(days=10)
    job = _dead("maps", died=died)
    page = admin_client.get(reverse("admin:queueing_deadjob_changelist")).content.decode()
    assert f"purged on {timezone.localtime(died + dt.timedelta(days=30)):%Y-%m-%d %H:%M}" in page
    detail = admin_client.get(reverse("admin:queueing_deadjob_change", args=[job.pk])).content.decode()
    assert "purged on" in detail


def test_dlq_page_says_kept_when_dead_jobs_have_no_retention(admin_client):
    RetentionPolicy.objects.filter(data_class=DataClass.DEAD_JOBS).update(days=None)
    _dead("maps", died=timezone.now() - dt.timedelta(days=400))
    page = admin_client.get(reverse("admin:queueing_deadjob_changelist")).content.decode()
    assert "kept until staff act (no retention)" in page


def test_alert_fires_before_the_purge_deletes_a_dead_job_and_the_purge_then_deletes_it():
    RetentionPolicy.objects.filter(data_class=DataClass.DEAD_JOBS).update(days=30)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        job = _dead("maps", died=start - dt.timedelta(days=25))
        _dead("other", died=start - dt.timedelta(days=1))
        alerts_evaluate(now=start)
        # 5 days before its purge: outside the default 72 hours, nothing is announced yet.
        assert not Alert.objects.filter(rule__kind=RuleKind.DLQ_PURGE_DUE).exists()
    two_days_before = start + dt.timedelta(days=3)
    with time_machine.travel(two_days_before, tick=False):
        alerts_evaluate(now=two_days_before)
        alert = Alert.objects.get(rule__kind=RuleKind.DLQ_PURGE_DUE)
        assert alert.labels["provider"] == "maps" and alert.state == AlertState.FIRING
        assert alert.annotations["purge_at"].startswith(f"{job.finished_at + dt.timedelta(days=30):%Y-%m-%d}")
        # The announced job is still there: the alert came first.
        assert retention_purge(actor=Actor.command("test"), dry_run=True)["counts"][DataClass.DEAD_JOBS] == 0
    after = start + dt.timedelta(days=5, hours=1)
    with time_machine.travel(after, tick=False):
        counts = retention_purge(actor=Actor.command("test"), now=after)["counts"]
        assert counts[DataClass.DEAD_JOBS] == 1
        assert not Job.objects.filter(pk=job.pk).exists()
        assert Job.objects.filter(state=JobState.DEAD).count() == 1
