"""The job path over the signed API: pull, extend, report, release (docs/API.md)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import time_machine
from django.utils import timezone

from queueing.models import AttemptState, Job, JobAttempt, JobState, ReportReceipt
from queueing.services import leases_reap
from tests.factories import lead, make_jobs, make_provider

pytestmark = pytest.mark.django_db


def pull_one(signed, **extra):
    response = signed.pull(1, **extra)
    assert response.status_code == 200, response.content
    jobs = response.json()["jobs"]
    assert len(jobs) == 1
    return jobs[0]


def test_pull_leases_the_highest_priority_ready_job(signed):
    low = make_jobs(1, priority=0)[0]
    high = make_jobs(1, priority=5)[0]
    claim = pull_one(signed)
    assert claim["id"] == high.pk
    assert claim["attempt"] == 1
    assert claim["provider"] == "maps"
    assert claim["payload"] == {"query": "coffee", "city": "Riyadh"}
    job = Job.objects.get(pk=high.pk)
    assert job.state == JobState.LEASED and job.leased_by_id == signed.worker_id
    assert str(job.current_attempt_id) == claim["attempt_id"]
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).worker_id == signed.worker_id
    assert Job.objects.get(pk=low.pk).state == JobState.QUEUED


def test_pull_returns_empty_list_and_retry_after_when_nothing_is_ready(signed):
    make_jobs(1)[0]
    Job.objects.update(run_at=timezone.now() + dt.timedelta(hours=1))
    body = signed.pull(5).json()
    assert body["jobs"] == []
    assert body["retry_after_s"] >= 1


def test_pull_batch_and_provider_filter(signed):
    make_jobs(3, provider=make_provider("maps"))
    make_jobs(3, provider=make_provider("yellow"))
    body = signed.pull(10, providers=["yellow"]).json()
    assert [job["provider"] for job in body["jobs"]] == ["yellow"] * 3


def test_disabled_provider_hands_out_nothing(signed):
    make_jobs(2, provider=make_provider("maps", enabled=False))
    assert signed.pull(5).json()["jobs"] == []


def test_report_success_finishes_the_job_and_counts_leads(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    leads = [lead("A", "0501234567"), lead("B", "+966 50 123 4567"), lead("C", "junk")]
    response = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": leads})
    assert response.status_code == 200, response.content
    assert response.json() == {"job_state": "succeeded", "added": 1, "duplicates": 1, "invalid": 1,
                               "suppressed": 0}
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.SUCCEEDED and job.leads_added == 1 and job.finished_at
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).state == AttemptState.SUCCEEDED


def test_partial_report_ingests_a_chunk_and_extends_the_lease(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=100), tick=False):
        response = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "partial",
                                          "leads": [lead("A", "0551111111")]})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["job_state"] == "leased" and body["added"] == 1
        assert dt.datetime.fromisoformat(body["lease_expires_at"]) > dt.datetime.fromisoformat(
            claim["lease_expires_at"])
        final = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                       "leads": [lead("B", "0552222222")]})
    assert final.json()["job_state"] == "succeeded"
    assert Job.objects.get(pk=job_id).leads_added == 2


def test_same_idempotency_key_and_body_returns_the_first_answer_and_changes_nothing(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    payload = {"attempt_id": claim["attempt_id"], "outcome": "partial", "leads": [lead("A", "0553333333")]}
    first = signed.report(job_id, payload, key="key-1")
    second = signed.report(job_id, payload, key="key-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).reports == 1
    assert ReportReceipt.objects.count() == 1


def test_same_idempotency_key_with_another_body_is_422(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "partial", "leads": []}, key="k")
    response = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                      "leads": []}, key="k")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Job.objects.get(pk=job_id).state == JobState.LEASED


def test_replayed_succeeded_report_after_finish_returns_first_answer(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    payload = {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": [lead()]}
    first = signed.report(job_id, payload, key="done-1")
    again = signed.report(job_id, payload, key="done-1")
    assert again.status_code == 200 and again.json() == first.json()


def test_superseded_attempt_gets_409_and_changes_nothing(signed):
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=30))[0]
    old = pull_one(signed)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=60), tick=False):
        assert leases_reap() == 1
        new = pull_one(signed)
        assert new["attempt"] == 2
        response = signed.report(job.pk, {"attempt_id": old["attempt_id"], "outcome": "succeeded",
                                          "leads": [lead("Late", "0554444444")]})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "attempt_superseded"
    job.refresh_from_db()
    assert job.state == JobState.LEASED and str(job.current_attempt_id) == new["attempt_id"]
    assert job.leads_added == 0


def test_report_on_a_lapsed_lease_is_taken_while_the_attempt_is_latest(signed):
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=30))[0]
    claim = pull_one(signed)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=60), tick=False):
        leases_reap()
        response = signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                          "leads": []})
    assert response.status_code == 200
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED


def test_another_workers_attempt_is_rejected(signed, make_signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    intruder = make_signed("w-intruder")
    response = intruder.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "attempt_not_owned"
    assert Job.objects.get(pk=job_id).state == JobState.LEASED
    extend = intruder.post(f"/api/v1/jobs/{job_id}/extend", {"attempt_id": claim["attempt_id"]})
    assert extend.status_code == 403


def test_report_after_finish_with_a_new_key_is_409_job_finished(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    again = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"


def test_unknown_job_and_attempt_are_404(signed):
    job_id = make_jobs(1)[0].pk
    pull_one(signed)
    missing_job = signed.report(999999, {"attempt_id": str(uuid.uuid4()), "outcome": "succeeded", "leads": []})
    assert missing_job.status_code == 404
    missing_attempt = signed.report(job_id, {"attempt_id": str(uuid.uuid4()), "outcome": "succeeded", "leads": []})
    assert missing_attempt.status_code == 404


def test_failed_report_requeues_with_backoff_then_dead_after_max_attempts(signed):
    job = make_jobs(1, provider=make_provider("maps", max_attempts=2, backoff_base_s=10, backoff_cap_s=60))[0]
    error = {"code": "captcha", "message": "blocked", "retryable": True}
    claim = pull_one(signed)
    before = timezone.now()
    response = signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "failed", "leads": [],
                                      "error": error})
    assert response.json()["job_state"] == "queued"
    job.refresh_from_db()
    # attempt 1: d = 10 s, wait in [5, 10] s.
    assert dt.timedelta(seconds=5) <= job.run_at - before <= dt.timedelta(seconds=11)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=30), tick=False):
        claim = pull_one(signed)
        assert claim["attempt"] == 2
        response = signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "failed",
                                          "leads": [], "error": error})
    assert response.json()["job_state"] == "dead"
    job.refresh_from_db()
    assert job.state == JobState.DEAD and job.dead_reason == "max_attempts"
    assert job.last_error == error


def test_non_retryable_failure_goes_straight_to_the_dlq(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "failed", "leads": [],
                           "error": {"code": "bad_query", "message": "nope", "retryable": False}})
    job = Job.objects.get(pk=job_id)
    assert job.state == JobState.DEAD and job.dead_reason == "non_retryable_error"


def test_extend_pushes_the_lease(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    response = signed.post(f"/api/v1/jobs/{job_id}/extend", {"attempt_id": claim["attempt_id"], "seconds": 600})
    assert response.status_code == 200
    expires = dt.datetime.fromisoformat(response.json()["lease_expires_at"])
    assert expires - timezone.now() > dt.timedelta(seconds=590)
    assert Job.objects.get(pk=job_id).lease_expires_at == expires


def test_release_gives_back_leases_without_counting_the_attempt(signed):
    make_jobs(3)
    claims = signed.pull(3).json()["jobs"]
    response = signed.post("/api/v1/jobs/release", {"attempt_ids": [claims[0]["attempt_id"]]})
    assert response.json() == {"released": 1}
    job = Job.objects.get(pk=claims[0]["id"])
    assert job.state == JobState.QUEUED and job.attempts == 0 and job.leased_by_id is None
    assert JobAttempt.objects.get(pk=claims[0]["attempt_id"]).state == AttemptState.RELEASED
    assert signed.post("/api/v1/jobs/release", {}).json() == {"released": 2}
    assert Job.objects.filter(state=JobState.QUEUED).count() == 3
    again = pull_one(signed)
    assert again["attempt"] == 1


def test_killed_worker_lease_is_reaped_and_another_worker_finishes(signed, make_signed, settings):
    settings.LEADOPS_REAP_ON_PULL_S = 0  # only the scheduled reaper, as on a fleet that does not pull
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=30))[0]
    pull_one(signed)  # this worker then dies
    rescuer = make_signed("w-rescuer")
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=31), tick=False):
        assert rescuer.pull(1).json()["jobs"] == []
        assert leases_reap() == 1
        claim = pull_one(rescuer)
        assert claim["attempt"] == 2
        done = rescuer.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert done.json()["job_state"] == "succeeded"
    attempts = {a.worker_id: a.state for a in JobAttempt.objects.filter(job=job)}
    assert attempts == {signed.worker_id: AttemptState.LOST, "w-rescuer": AttemptState.SUCCEEDED}


def test_a_dead_workers_job_is_claimable_again_within_lease_plus_the_reap_period(clock, signed, make_signed,
                                                                                settings):
    settings.LEADOPS_REAP_ON_PULL_S = 10
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=30))[0]
    first = pull_one(signed)  # this worker then dies; the scheduled reaper does not run here
    rescuer = make_signed("w-rescuer")
    clock.shift(dt.timedelta(seconds=29))
    assert rescuer.pull(1).json()["jobs"] == []  # the lease is still live
    # Lease + 10 s at the latest: the pull path reaps at most every 10 s, then claims.
    clock.shift(dt.timedelta(seconds=11))
    claim = pull_one(rescuer)
    assert (claim["id"], claim["attempt"]) == (job.pk, 2)
    assert JobAttempt.objects.get(pk=first["attempt_id"]).state == AttemptState.LOST
    # The dead worker's late report is refused: its attempt was superseded.
    late = signed.report(job.pk, {"attempt_id": first["attempt_id"], "outcome": "succeeded", "leads": []})
    assert late.status_code == 409 and late.json()["error"]["code"] == "attempt_superseded"


def test_the_pull_path_reaps_at_most_once_per_period(clock, signed, make_signed, settings):
    settings.LEADOPS_REAP_ON_PULL_S = 10
    job = make_jobs(1, provider=make_provider("short", lease_seconds=2))[0]
    pull_one(signed)  # the period starts here; this worker then dies
    rescuer = make_signed("w-rescuer")
    clock.shift(dt.timedelta(seconds=3))
    # The lease lapsed a second ago, but the pull path reaped less than 10 s ago: not yet.
    assert rescuer.pull(1).json()["jobs"] == []
    assert Job.objects.get(pk=job.pk).state == JobState.LEASED
    clock.shift(dt.timedelta(seconds=7))
    assert pull_one(rescuer)["attempt"] == 2


def test_reaper_buries_a_job_whose_attempts_are_spent(signed):
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=30, max_attempts=1))[0]
    pull_one(signed)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=31), tick=False):
        leases_reap()
    job.refresh_from_db()
    assert job.state == JobState.DEAD and job.dead_reason == "lease_expired"
    assert job.last_error["code"] == "lease_expired"


def test_reaper_never_touches_a_live_lease(signed):
    make_jobs(1)
    pull_one(signed)
    assert leases_reap() == 0
    assert Job.objects.get().state == JobState.LEASED


def test_a_failed_attempt_cannot_be_extended_or_reported_again(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "failed", "leads": [],
                           "error": {"code": "x", "message": "y", "retryable": True}})
    extend = signed.post(f"/api/v1/jobs/{job_id}/extend", {"attempt_id": claim["attempt_id"]})
    assert extend.status_code == 409 and extend.json()["error"]["code"] == "attempt_superseded"
    late = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert late.status_code == 409
    assert Job.objects.get(pk=job_id).state == JobState.QUEUED


def test_a_released_attempt_cannot_be_reported(signed):
    job_id = make_jobs(1)[0].pk
    claim = pull_one(signed)
    signed.post("/api/v1/jobs/release", {})
    late = signed.report(job_id, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": []})
    assert late.status_code == 409
    assert Job.objects.get(pk=job_id).state == JobState.QUEUED
