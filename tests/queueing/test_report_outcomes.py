"""One job state machine: a v1 report and an exchange item move the job and attempt the same way.

Every outcome a report can have is sent once through `POST /jobs/{id}/report` and once as an item
of `POST /jobs/exchange`; both must answer alike and leave the job and its attempt in the same
states (docs/SYSTEM_OVERVIEW.md, "The job state machine"). Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone

from core.audit import Actor
from ingestion.models import Lead
from queueing import services
from queueing.models import AttemptState, Job, JobAttempt, JobState
from tests.factories import lead, make_jobs, make_provider

pytestmark = pytest.mark.django_db

EXCHANGE = "/api/v1/jobs/exchange"
LEASE_S = 120
STAFF = Actor(name="ops", source="admin")


def _send(signed, path: str, *, job_id: int, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One report through `path`: its HTTP status and answer, as the v1 call would give them."""
    if path == "v1":
        response = signed.report(job_id, body, key=key)
        return response.status_code, response.json()
    response = signed.post(EXCHANGE, {"reports": [{"job_id": job_id, "idempotency_key": key, **body}]})
    assert response.status_code == 200, response.content
    (item,) = response.json()["results"]
    assert item["job_id"] == job_id
    return item["status"], item["body"]


@dataclass
class Case:
    """A job in some situation, a report on its first attempt, and what must follow."""

    body: dict[str, Any]
    status: int
    answer: str  # the answer's job_state, or its error code
    job: JobState
    attempt: AttemptState
    max_attempts: int = 5
    before: Callable[[Any, Any], None] | None = None  # moves the world after the claim
    expect: dict[str, Any] = field(default_factory=dict)
    twice: bool = False  # send the same report (same key, same body) a second time


def _lapse_and_reap(signed, clock) -> None:
    clock.shift(dt.timedelta(seconds=LEASE_S + 1))
    assert services.leases_reap() == 1


def _lapse_reap_and_claim_again(signed, clock) -> None:
    _lapse_and_reap(signed, clock)
    assert len(signed.pull(1).json()["jobs"]) == 1


def _cancel(signed, clock) -> None:
    assert services.jobs_cancel(job_ids=list(Job.objects.values_list("pk", flat=True)), actor=STAFF) == 1


FAILED = {"outcome": "failed", "error": {"code": "timeout", "message": "slow", "retryable": True}}
CASES = {
    "succeeded with leads": Case(
        {"outcome": "succeeded", "leads": [lead("A", "0501000001"), lead("B", "0501000002"), lead("C", "12")]},
        200, "succeeded", JobState.SUCCEEDED, AttemptState.SUCCEEDED,
        expect={"leads_added": 2, "finished": True, "leased_by": None, "leads_stored": 3}),
    "partial renews the lease": Case(
        {"outcome": "partial", "leads": [lead("A", "0501000003")]},
        200, "leased", JobState.LEASED, AttemptState.RUNNING,
        expect={"leads_added": 1, "finished": False, "lease_s": LEASE_S, "leased_by": "w-main"}),
    "retryable failure backs off": Case(
        FAILED, 200, "queued", JobState.QUEUED, AttemptState.FAILED,
        expect={"last_error": "timeout", "backoff": True, "dead_reason": "", "finished": False}),
    "failure at max attempts is dead-lettered": Case(
        FAILED, 200, "dead", JobState.DEAD, AttemptState.FAILED, max_attempts=1,
        expect={"dead_reason": "max_attempts", "last_error": "timeout", "finished": True}),
    "blocked (not retryable) is dead-lettered": Case(
        {"outcome": "failed", "error": {"code": "blocked", "message": "403", "retryable": False}},
        200, "dead", JobState.DEAD, AttemptState.FAILED,
        expect={"dead_reason": "non_retryable_error", "last_error": "blocked", "finished": True}),
    "a lost lease still reports": Case(
        {"outcome": "succeeded", "leads": [lead("A", "0501000004")]},
        200, "succeeded", JobState.SUCCEEDED, AttemptState.SUCCEEDED, before=_lapse_and_reap,
        expect={"leads_added": 1, "finished": True}),
    "a lost lease takes its job back with a partial": Case(
        {"outcome": "partial", "leads": []},
        200, "leased", JobState.LEASED, AttemptState.RUNNING, before=_lapse_and_reap,
        expect={"lease_s": LEASE_S, "leased_by": "w-main"}),
    "a stale attempt is superseded": Case(
        {"outcome": "succeeded", "leads": [lead("A", "0501000005")]},
        409, "attempt_superseded", JobState.LEASED, AttemptState.LOST, before=_lapse_reap_and_claim_again,
        expect={"leads_added": 0, "attempt_reports": 0, "leads_stored": 0}),
    "a finished job refuses the report": Case(
        {"outcome": "succeeded", "leads": []},
        409, "job_finished", JobState.CANCELLED, AttemptState.CANCELLED, before=_cancel,
        expect={"attempt_reports": 0}),
    "a duplicate report is answered once": Case(
        {"outcome": "succeeded", "leads": [lead("A", "0501000006")]},
        200, "succeeded", JobState.SUCCEEDED, AttemptState.SUCCEEDED, twice=True,
        expect={"leads_added": 1, "attempt_reports": 1, "leads_stored": 1}),
}


def _state(job: Job, attempt: JobAttempt, now: dt.datetime) -> dict[str, Any]:
    """What the case's `expect` may name, read from the rows."""
    lease = (job.lease_expires_at - now).total_seconds() if job.lease_expires_at else None
    delay = (job.run_at - now).total_seconds()
    return {
        "leads_added": job.leads_added, "attempt_leads": attempt.leads_added, "finished": job.finished_at is not None,
        "leased_by": job.leased_by_id, "lease_s": lease, "dead_reason": job.dead_reason,
        "last_error": (job.last_error or {}).get("code"), "attempt_reports": attempt.reports,
        # Provider defaults: base 30 s, so the first retry waits 15-30 s (docs/SYSTEM_OVERVIEW.md).
        "backoff": 15 <= delay <= 30, "leads_stored": Lead.objects.filter(job_id=job.pk).count(),
    }


@pytest.mark.parametrize("path", ["v1", "exchange"])
@pytest.mark.parametrize("name", list(CASES))
def test_each_report_outcome_moves_job_and_attempt_the_same_on_both_paths(clock, signed, path, name):
    case = CASES[name]
    (job,) = make_jobs(1, provider=make_provider("maps", max_attempts=case.max_attempts, lease_seconds=LEASE_S))
    (claim,) = signed.pull(1).json()["jobs"]
    if case.before:
        case.before(signed, clock)
    now = timezone.now()
    key = str(uuid.uuid4())
    body = {"attempt_id": claim["attempt_id"], "leads": [], **case.body}
    status, answer = _send(signed, path, job_id=job.pk, key=key, body=body)
    if case.twice:
        assert _send(signed, path, job_id=job.pk, key=key, body=body) == (status, answer)
    assert status == case.status, answer
    assert (answer.get("job_state") or answer["error"]["code"]) == case.answer
    job.refresh_from_db()
    attempt = JobAttempt.objects.get(pk=claim["attempt_id"])
    assert (job.state, attempt.state) == (case.job, case.attempt)
    state = _state(job, attempt, now)
    assert {name: state[name] for name in case.expect} == case.expect
    if case.status == 200:
        assert attempt.reports == 1 and attempt.leads_added == job.leads_added
        if case.attempt != AttemptState.RUNNING:
            assert attempt.finished_at is not None
        if "lease_s" in case.expect:
            assert answer["lease_expires_at"] == attempt.lease_expires_at.isoformat()
            assert attempt.lease_expires_at == job.lease_expires_at
