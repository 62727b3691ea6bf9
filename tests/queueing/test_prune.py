"""Finished jobs are pruned after the retention period, like Oban's pruner; dead jobs stay for people."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from queueing.models import Job, JobAttempt, JobState, ReportReceipt
from queueing.services import (
    dead_jobs_delete,
    finished_jobs_prune,
    job_report,
    jobs_pull,
    report_request_hash,
)
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def finish(job_ids: list[int], *, state: str, days_ago: float) -> None:
    Job.objects.filter(pk__in=job_ids).update(state=state, finished_at=NOW - dt.timedelta(days=days_ago))


def reported_job() -> Job:
    """A job that really ran: one attempt and a stored report receipt (call before other jobs exist)."""
    make_jobs(1, provider=make_provider("maps"))
    worker, _ = make_worker(worker_id="w-prune")
    (claim,) = jobs_pull(worker=worker, max_jobs=1).claims
    body = {"ok": True}
    job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome="succeeded", leads=[],
               error=None, idempotency_key="k-1", request_hash=report_request_hash(job_id=claim.job_id, body=body))
    return Job.objects.get(pk=claim.job_id)


def test_old_succeeded_and_cancelled_jobs_go_with_attempts_and_receipts_dead_and_recent_stay():
    provider = make_provider("maps")
    ran = reported_job()
    finish([ran.pk], state=JobState.SUCCEEDED, days_ago=40)
    old_cancelled, old_dead, recent, queued = (job.pk for job in make_jobs(4, provider=provider))
    finish([old_cancelled], state=JobState.CANCELLED, days_ago=31)
    finish([old_dead], state=JobState.DEAD, days_ago=90)
    finish([recent], state=JobState.SUCCEEDED, days_ago=29)
    assert JobAttempt.objects.filter(job_id=ran.pk).count() == 1
    assert ReportReceipt.objects.filter(job_id=ran.pk).count() == 1

    assert finished_jobs_prune(older_than=NOW - dt.timedelta(days=30)) == 2
    assert set(Job.objects.values_list("id", flat=True)) == {old_dead, recent, queued}
    assert not JobAttempt.objects.filter(job_id=ran.pk).exists()
    assert not ReportReceipt.objects.filter(job_id=ran.pk).exists()


def test_pruning_goes_in_chunks_and_stops_at_the_most_per_run():
    jobs = [job.pk for job in make_jobs(7)]
    finish(jobs, state=JobState.SUCCEEDED, days_ago=60)
    assert finished_jobs_prune(older_than=NOW, chunk=2, most=5) == 5
    assert Job.objects.count() == 2
    assert finished_jobs_prune(older_than=NOW, chunk=2) == 2
    assert not Job.objects.exists()


def test_the_task_keeps_jobs_for_the_idempotency_window_and_zero_days_keeps_everything(settings):
    from queueing.tasks import prune_finished_jobs

    jobs = [job.pk for job in make_jobs(2)]
    finish(jobs[:1], state=JobState.SUCCEEDED, days_ago=1.5)  # inside the 48 h idempotency window
    finish(jobs[1:], state=JobState.SUCCEEDED, days_ago=2.5)
    settings.LEADOPS_JOB_RETENTION_DAYS = 0
    assert prune_finished_jobs() == 0
    settings.LEADOPS_JOB_RETENTION_DAYS = 1
    assert prune_finished_jobs() == 1
    assert list(Job.objects.values_list("id", flat=True)) == jobs[:1]


def test_deleting_dead_jobs_counts_jobs_not_the_attempts_that_go_with_them():
    ran = reported_job()
    finish([ran.pk], state=JobState.DEAD, days_ago=1)
    assert dead_jobs_delete(job_ids=[ran.pk]) == 1
