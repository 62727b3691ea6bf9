"""The worker loop against the in-memory portal: jobs done, leases renewed, reports chunked, leases
released on stop."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.provider import (
    LeadPool,
    ScrapeCancelled,
    ScrapeError,
    SimulatedProvider,
    failure_screenshot,
)
from worker_client.tests.fake_portal import BASE_URL, FakePortal
from worker_client.worker import Worker


class StubProvider:
    """Returns fixed leads after an optional delay, or raises what it is told to."""

    def __init__(self, leads: int = 3, *, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.leads = leads
        self.delay_s = delay_s
        self.error = error
        self.started = threading.Event()

    def scrape(self, payload: Mapping[str, Any], *, cancel: threading.Event | None = None) -> list[dict[str, Any]]:
        self.started.set()
        if self.delay_s and cancel is not None and cancel.wait(self.delay_s):
            raise ScrapeCancelled()
        if self.error is not None:
            raise self.error
        return [{"name": f"Lead {i}", "phone": f"05012345{i:02d}"} for i in range(self.leads)]


def make_worker(portal: FakePortal, provider: Any, **kwargs: Any) -> Worker:
    client = LeadOpsClient(BASE_URL, portal.worker_id, *next(iter(portal.keys.items())), transport=portal.transport,
                           retry=RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_cap_s=0.02))
    kwargs.setdefault("min_renew_interval_s", 0.05)
    # The fake portal speaks protocol v1 only; the exchange path is tested against the real server
    # (tests/e2e/test_live_fleet.py) and its fallback below.
    kwargs.setdefault("use_exchange", False)
    return Worker(client, provider, **kwargs)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def finished(portal: FakePortal) -> bool:
    return all(job.state in ("succeeded", "failed") for job in portal.jobs.values())


def run_until(worker: Worker, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    worker.start()
    try:
        wait_until(condition, timeout)
    finally:
        assert worker.stop(timeout=5)


def test_worker_completes_every_job_and_sends_every_lead():
    portal = FakePortal()
    portal.add_jobs(7)
    worker = make_worker(portal, StubProvider(leads=3), batch=3)

    run_until(worker, lambda: finished(portal))

    assert all(job.state == "succeeded" for job in portal.jobs.values())
    assert sum(len(report["leads"]) for job in portal.jobs.values() for report in job.reports) == 21
    summary = worker.summary()
    assert summary["jobs_done"] == 7 and summary["leads_sent"] == 21
    assert summary["requests"] == len(portal.requests) and summary["failed_requests"] == 0
    assert max(call.json["max"] for call in portal.calls("/jobs/pull")) == 3
    assert portal.auth_failures == 0


def test_realistic_leads_from_the_simulated_provider_go_through():
    portal = FakePortal()
    portal.add_jobs(4)
    provider = SimulatedProvider(rng=random.Random(9), pool=LeadPool(), leads_per_job=(5, 15))
    worker = make_worker(portal, provider, batch=2)

    run_until(worker, lambda: finished(portal))

    sent = [lead for job in portal.jobs.values() for report in job.reports for lead in report["leads"]]
    assert len(sent) == worker.counters.leads_sent > 0
    assert portal.auth_failures == 0


def test_reports_are_chunked_partial_then_succeeded_each_with_its_own_key():
    portal = FakePortal(config={"report_chunk_leads": 4})
    job = portal.add_jobs(1)[0]
    worker = make_worker(portal, StubProvider(leads=10))

    run_until(worker, lambda: finished(portal))

    assert [(r["outcome"], len(r["leads"])) for r in job.reports] == [("partial", 4), ("partial", 4),
                                                                      ("succeeded", 2)]
    keys = [call.headers["idempotency-key"] for call in portal.calls("/report")]
    assert len(set(keys)) == 3


def test_chunk_size_never_exceeds_the_server_limit_per_report():
    portal = FakePortal(config={"report_chunk_leads": 500, "max_leads_per_report": 3})
    job = portal.add_jobs(1)[0]

    run_until(make_worker(portal, StubProvider(leads=7)), lambda: finished(portal))

    assert [len(r["leads"]) for r in job.reports] == [3, 3, 1]


def test_a_job_without_leads_is_reported_succeeded_with_an_empty_list():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]

    run_until(make_worker(portal, StubProvider(leads=0)), lambda: finished(portal))

    assert job.reports == [{"attempt_id": job.attempt_id, "outcome": "succeeded", "leads": []}]


def test_a_retried_chunk_is_sent_again_with_the_same_key_and_counts_once():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]
    portal.fail_next("/report", httpx.ConnectError("reset"), httpx.Response(503))

    run_until(make_worker(portal, StubProvider(leads=2)), lambda: finished(portal))

    calls = portal.calls("/report")
    assert len(calls) == 3
    assert len({c.headers["idempotency-key"] for c in calls}) == 1
    assert len({c.body for c in calls}) == 1
    assert len(job.reports) == 1


def test_lease_is_renewed_at_half_the_lease_while_scraping():
    portal = FakePortal(lease_s=0.6)
    job = portal.add_jobs(1)[0]
    worker = make_worker(portal, StubProvider(leads=1, delay_s=1.0))

    run_until(worker, lambda: finished(portal))

    extends = portal.calls("/extend")
    assert len(extends) >= 2  # about one every 0.3 s during a 1 s scrape
    assert all(call.json == {"attempt_id": job.attempt_id} for call in extends)
    assert worker.counters.extensions == len(extends)
    assert job.state == "succeeded"


def test_first_renewal_comes_at_about_half_the_lease():
    portal = FakePortal(lease_s=2.0)
    portal.add_jobs(1)
    provider = StubProvider(leads=1, delay_s=1.8)
    worker = make_worker(portal, provider)
    worker.start()
    try:
        wait_until(provider.started.is_set)
        started = time.monotonic()
        wait_until(lambda: portal.calls("/extend"), timeout=3)
        elapsed = time.monotonic() - started
    finally:
        worker.stop(timeout=5)

    # Due 1.0 s after the pull; the margin is for a busy test machine.
    assert 0.7 <= elapsed <= 1.6


def test_a_scrape_error_is_reported_failed_and_retryable():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]
    worker = make_worker(portal, StubProvider(error=ScrapeError("captcha_required", "Captcha shown.")))

    run_until(worker, lambda: finished(portal))

    assert job.reports == [{
        "attempt_id": job.attempt_id, "outcome": "failed", "leads": [],
        "error": {"code": "captcha_required", "message": "Captcha shown.", "retryable": True},
    }]
    assert worker.counters.jobs_failed == 1


def test_a_crashing_provider_is_reported_as_a_worker_error():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]

    run_until(make_worker(portal, StubProvider(error=KeyError("selector"))), lambda: finished(portal))

    assert job.reports[0]["error"]["code"] == "worker_error"


@pytest.mark.parametrize("code", ["attempt_superseded", "job_finished"])
def test_a_job_whose_attempt_moved_on_is_dropped(code):
    portal = FakePortal()
    portal.add_jobs(2)
    portal.fail_next("/report", httpx.Response(409, json={"error": {"code": code, "message": "No."}}))
    worker = make_worker(portal, StubProvider(leads=1), batch=1)

    run_until(worker, lambda: worker.counters.jobs_done == 1 and worker.counters.jobs_dropped == 1)

    assert worker.counters.jobs_dropped == 1
    assert len(portal.calls("/report")) == 2  # the 409 is final: no retry


def test_a_lease_lost_during_the_scrape_drops_the_job_without_reporting():
    portal = FakePortal(lease_s=0.4)
    job = portal.add_jobs(1)[0]
    portal.fail_next("/extend", httpx.Response(409, json={"error": {"code": "attempt_superseded",
                                                                    "message": "Newer attempt."}}))
    worker = make_worker(portal, StubProvider(leads=1, delay_s=0.5))

    run_until(worker, lambda: worker.counters.jobs_dropped == 1)

    assert portal.calls("/report") == []
    assert job.reports == []


def test_stop_releases_the_leases_of_jobs_not_done():
    portal = FakePortal()
    jobs = portal.add_jobs(3)
    provider = StubProvider(leads=1, delay_s=30)
    worker = make_worker(portal, provider, batch=3, concurrency=1)
    worker.start()
    wait_until(provider.started.is_set)

    assert worker.stop(timeout=5)

    release = portal.calls("/jobs/release")
    assert len(release) == 1
    assert sorted(release[0].json["attempt_ids"]) == sorted(job.attempt_id for job in jobs)
    assert all(job.state == "queued" for job in jobs)
    assert worker.counters.jobs_released == 3
    assert portal.calls("/report") == []
    assert portal.calls("/heartbeat")[-1].json["status"] == "stopped"


def test_stop_with_nothing_held_releases_nothing():
    portal = FakePortal()
    worker = make_worker(portal, StubProvider())
    worker.start()
    wait_until(lambda: portal.calls("/jobs/pull"))

    assert worker.stop(timeout=5)

    assert portal.calls("/jobs/release") == []


def test_heartbeats_go_out_on_the_configured_interval_with_the_running_jobs():
    portal = FakePortal(config={"heartbeat_interval_s": 0.05})
    portal.add_jobs(1)
    provider = StubProvider(leads=1, delay_s=0.5)
    worker = make_worker(portal, provider)

    run_until(worker, lambda: len(portal.calls("/heartbeat")) >= 6)

    beats = [call.json for call in portal.calls("/heartbeat")]
    assert any(beat["status"] == "busy" and beat["running_jobs"] == 1 for beat in beats)
    assert all(set(beat) >= {"version", "status", "running_jobs"} for beat in beats)


def test_a_new_config_version_is_loaded():
    portal = FakePortal(config={"heartbeat_interval_s": 0.05, "report_chunk_leads": 200})
    worker = make_worker(portal, StubProvider())
    worker.start()
    try:
        wait_until(lambda: len(portal.calls("/heartbeat")) >= 2)
        portal.config.update(config_version=2, report_chunk_leads=7)
        wait_until(lambda: worker.settings.report_chunk_leads == 7)
    finally:
        worker.stop(timeout=5)

    assert len(portal.calls("/config")) >= 2


def test_duration_ends_the_run():
    portal = FakePortal()
    worker = make_worker(portal, StubProvider())
    started = time.monotonic()

    worker.run(duration=0.3)

    assert 0.25 <= time.monotonic() - started <= 3


def test_the_worker_keeps_going_when_the_server_is_down_for_a_while():
    portal = FakePortal()
    portal.add_jobs(2)
    portal.fail_next("/jobs/pull", *[httpx.ConnectError("down")] * 5)
    worker = make_worker(portal, StubProvider(leads=1))

    run_until(worker, lambda: finished(portal))

    assert worker.counters.errors >= 1
    assert worker.summary()["failed_requests"] >= 5


def test_a_refused_report_is_turned_into_a_failed_report_that_says_why():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]
    portal.fail_next("/report", httpx.Response(422, json={"error": {"code": "validation_error",
                                                                    "message": "Some leads are not valid."}}))
    worker = make_worker(portal, StubProvider(leads=2))

    run_until(worker, lambda: finished(portal))

    assert job.state == "failed"
    assert job.reports[0]["error"] == {"code": "report_rejected", "retryable": True,
                                       "message": "422 validation_error: Some leads are not valid."}


def test_a_worker_runs_once():
    portal = FakePortal()
    worker = make_worker(portal, StubProvider())
    worker.run(duration=0.05)

    with pytest.raises(RuntimeError):
        worker.run(duration=0.05)


def test_a_scrape_errors_screenshot_is_uploaded_before_the_failure_report():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]
    screenshot = failure_screenshot("blocked")
    worker = make_worker(portal, StubProvider(error=ScrapeError("blocked", "403", screenshot=screenshot)))

    run_until(worker, lambda: finished(portal))

    assert job.evidence == [("image/png", screenshot)]
    upload, = portal.calls("/evidence")
    assert upload.headers["x-leadops-attempt-id"] == job.attempt_id
    paths = [call.path for call in portal.requests if call.path.startswith(f"/api/v1/jobs/{job.id}/")]
    assert paths[-2:] == [f"/api/v1/jobs/{job.id}/evidence", f"/api/v1/jobs/{job.id}/report"]
    assert job.reports[0]["outcome"] == "failed" and worker.counters.evidence_sent == 1


def test_a_refused_screenshot_does_not_stop_the_failure_report():
    portal = FakePortal()
    job = portal.add_jobs(1)[0]
    portal.fail_next("/evidence", httpx.Response(413, json={"error": {"code": "payload_too_large",
                                                                      "message": "too big"}}))
    worker = make_worker(portal, StubProvider(error=ScrapeError("blocked", "403", screenshot=b"\x89PNG")))

    run_until(worker, lambda: finished(portal))

    assert job.reports[0]["error"]["code"] == "blocked" and job.evidence == []


def test_worker_falls_back_to_v1_when_the_server_has_no_exchange():
    portal = FakePortal()
    portal.add_jobs(4)
    worker = make_worker(portal, StubProvider(leads=2), batch=2, use_exchange=True)

    run_until(worker, lambda: finished(portal))

    assert worker.use_exchange is False
    paths = [request.path for request in portal.requests]
    # One exchange answered 404, then only v1 calls: no report was lost on the way.
    assert paths.count("/api/v1/jobs/exchange") == 1
    assert all(job.state == "succeeded" for job in portal.jobs.values())
    assert worker.summary()["jobs_done"] == 4 and worker.summary()["leads_sent"] == 8
