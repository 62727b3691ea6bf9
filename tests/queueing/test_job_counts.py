"""The monitor's maintained job counts equal a recount after every kind of transition (both legs).

The counts are kept by triggers in the statement that changes the jobs (queueing/services/counts.py),
so each test runs the real service of one transition and compares with `COUNT(*)` over the jobs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core.audit import Actor
from queueing import services
from queueing.models import Campaign, Job, JobState, JobStateCount
from queueing.selectors import dlq_stats, job_state_counts, job_state_recount, queue_overview
from queueing.services.counts import TRIGGERS, job_state_triggers_ensure
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db

STAFF = Actor(name="ops", source="admin")


def assert_counts_match() -> None:
    assert job_state_counts() == job_state_recount()


def report(worker, claim, outcome: str, **extra) -> None:
    body = {"outcome": outcome, **extra}
    services.job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome,
               leads=[], error=extra.get("error"), idempotency_key=str(uuid.uuid4()),
               request_hash=services.report_request_hash(job_id=claim.job_id, body=body))


@pytest.fixture
def worker():
    return make_worker(worker_id="w-counts")[0]


def test_enqueue_counts_per_provider():
    make_jobs(3, provider=make_provider("maps"))
    make_jobs(2, provider=make_provider("dir"))
    assert sorted(job_state_counts().values()) == [2, 3]
    assert_counts_match()


def test_claim_and_each_report_outcome(worker):
    make_jobs(4, provider=make_provider("maps", max_attempts=1))
    claims = services.jobs_pull(worker=worker, max_jobs=4).claims
    assert_counts_match()
    report(worker, claims[0], "succeeded")
    report(worker, claims[1], "partial")
    report(worker, claims[2], "failed", error={"code": "blocked", "retryable": False})
    report(worker, claims[3], "failed", error={"code": "timeout", "retryable": True})  # max_attempts=1
    assert_counts_match()
    assert {state: n for (_, state), n in job_state_counts().items()} == {
        JobState.SUCCEEDED: 1, JobState.LEASED: 1, JobState.DEAD: 2}


def test_a_retry_goes_back_to_queued(worker):
    make_jobs(1, provider=make_provider("maps", max_attempts=3))
    claim, = services.jobs_pull(worker=worker, max_jobs=1).claims
    report(worker, claim, "failed", error={"code": "timeout", "retryable": True})
    assert_counts_match()
    assert {state for (_, state) in job_state_counts()} == {JobState.QUEUED}


def test_exchange_moves_many_jobs_in_one_transaction(worker):
    make_jobs(3, provider=make_provider("maps"))
    claims = services.jobs_pull(worker=worker, max_jobs=3).claims
    outcomes = ["succeeded", "failed", "partial"]
    calls = [services.ReportCall(job_id=c.job_id, attempt_id=c.attempt_id, outcome=o, leads=[], error=None,
                        idempotency_key=f"k-{i}", request_hash=f"h-{i}")
             for i, (c, o) in enumerate(zip(claims, outcomes, strict=True))]
    services.reports_exchange(worker=worker, items=calls)
    assert_counts_match()


def test_reaper_and_release(worker):
    make_jobs(2, provider=make_provider("maps", lease_seconds=30))
    services.jobs_pull(worker=worker, max_jobs=1)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=60), tick=False):
        assert services.leases_reap() == 1
    assert_counts_match()
    services.jobs_pull(worker=worker, max_jobs=2)
    assert services.jobs_release(worker=worker) >= 1
    assert_counts_match()


def test_cancel_requeue_and_the_dead_letter_queue(worker):
    jobs = make_jobs(4, provider=make_provider("maps", max_attempts=1))
    assert services.jobs_cancel(job_ids=[jobs[0].pk], actor=STAFF) == 1
    assert_counts_match()
    assert services.jobs_requeue(job_ids=[jobs[0].pk], actor=STAFF) == 1
    assert_counts_match()
    for claim in services.jobs_pull(worker=worker, max_jobs=4).claims:
        report(worker, claim, "failed", error={"code": "blocked", "retryable": False})
    assert dlq_stats()["size"] == 4
    assert services.dlq_requeue(provider="maps", actor=STAFF) == 4
    assert_counts_match()
    for claim in services.jobs_pull(worker=worker, max_jobs=4).claims:
        report(worker, claim, "failed", error={"code": "blocked", "retryable": False})
    assert services.dlq_purge(provider="maps", actor=STAFF) == 4
    assert_counts_match()
    assert job_state_counts() == {}


def test_pruner_and_dead_job_retention(worker):
    make_jobs(3, provider=make_provider("maps", max_attempts=1))
    claims = services.jobs_pull(worker=worker, max_jobs=3).claims
    report(worker, claims[0], "succeeded")
    report(worker, claims[1], "failed", error={"code": "blocked", "retryable": False})
    later = timezone.now() + dt.timedelta(days=1)
    assert services.finished_jobs_prune(older_than=later) == 1
    assert_counts_match()
    assert services.dead_jobs_purge(older_than=later) == 1
    assert_counts_match()
    assert queue_overview()["totals"][JobState.LEASED] == 1


def test_campaign_runs_manual_and_scheduled(clock):
    campaign = services.campaign_create(campaign=Campaign(name="c", provider=make_provider("maps"), queries="a\nb",
                                                 cities="Riyadh", schedule="every hour", schedule_paused=False),
                               actor=STAFF)
    assert services.campaign_enqueue(campaign=campaign, actor=STAFF) == 2
    assert_counts_match()
    Job.objects.filter(campaign=campaign).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
    campaign.refresh_from_db()
    clock.move_to(campaign.next_run_at + dt.timedelta(hours=1))
    assert len(services.campaign_schedules_run()) == 1
    assert_counts_match()
    assert sum(job_state_counts().values()) == 4


def test_compaction_keeps_the_numbers_and_folds_the_rows(worker):
    make_jobs(5, provider=make_provider("maps"))
    for claim in services.jobs_pull(worker=worker, max_jobs=5).claims:
        report(worker, claim, "succeeded")
    before = job_state_counts()
    assert services.job_state_counts_compact() >= 2
    assert job_state_counts() == before == job_state_recount()
    assert JobStateCount.objects.count() == 1  # one (provider, state) pair left: 5 succeeded


def test_reconcile_corrects_changes_made_behind_the_triggers_back(worker):
    jobs = make_jobs(3, provider=make_provider("maps"))
    # Something wrote jobs without the triggers (a restore, a dropped trigger): the counts drift.
    JobStateCount.objects.all().delete()
    JobStateCount.objects.create(provider_id=jobs[0].provider_id, state=JobState.DEAD, delta=7)
    assert job_state_counts() != job_state_recount()
    out = StringIO()
    call_command("job_counts_reconcile", stdout=out)
    assert "2 correction(s)" in out.getvalue()
    assert_counts_match()
    assert services.job_state_counts_reconcile() == []


def test_missing_triggers_are_put_back_after_migrate_with_a_recount():
    make_jobs(2, provider=make_provider("maps"))
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER {name}" + (" ON queueing_job" if connection.vendor == "postgresql"
                                                     else ""))
    make_jobs(1, provider=make_provider("maps"))  # not counted: no trigger
    assert sum(job_state_counts().values()) == 2
    assert sorted(job_state_triggers_ensure()) == sorted(TRIGGERS)
    assert_counts_match()
    make_jobs(1, provider=make_provider("maps"))
    assert sum(job_state_counts().values()) == 4


def test_monitor_reads_the_counts_without_counting_jobs(admin_client, django_assert_max_num_queries):
    make_jobs(3, provider=make_provider("maps"))
    with django_assert_max_num_queries(40) as captured:
        assert admin_client.get("/admin/monitor/").status_code == 200
    # The throughput chart groups the last hour's finished jobs by minute (an indexed range of
    # `finished_at`, docs/RUNBOOK.md "The monitor"); nothing counts the whole table.
    counted = [q["sql"] for q in captured.captured_queries
               if "FROM \"queueing_job\"" in q["sql"] and "GROUP BY" in q["sql"]
               and '"queueing_job"."finished_at" >=' not in q["sql"]]
    assert counted == []
