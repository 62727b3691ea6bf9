"""A few real rows of every model the admin shows, made through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from queueing.models import Campaign, Job, JobAttempt, Provider
from queueing.services import campaign_enqueue, job_report, jobs_cancel, jobs_pull
from tests.factories import make_jobs, make_provider, make_worker
from workers_mgmt.models import Worker, WorkerConfig, WorkerCredential
from workers_mgmt.services import worker_config_get, worker_heartbeat


@dataclass
class Rows:
    worker: Worker
    credential: WorkerCredential
    config: WorkerConfig
    provider: Provider
    campaign: Campaign
    draft_campaign: Campaign
    jobs: list[Job]
    attempt: JobAttempt


def finish(worker: Worker, claim, *, outcome: str = "succeeded", error: dict | None = None) -> None:
    job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome, leads=[],
               error=error, idempotency_key=str(uuid.uuid4()), request_hash=uuid.uuid4().hex)


@pytest.fixture
def rows(db, admin_user) -> Rows:
    worker, issued = make_worker(worker_id="w-admin", name="Admin test worker")
    worker_heartbeat(worker=worker, version="1.2.3", status="ok", running_jobs=1, metrics={}, ip="10.0.0.7")
    make_worker(worker_id="w-silent")
    provider = make_provider("maps")
    campaign = Campaign.objects.create(name="Cafes", provider=provider, queries="coffee\ntea",
                                       cities="Riyadh\nJeddah", created_by=admin_user)
    campaign_enqueue(campaign=campaign)
    draft = Campaign.objects.create(name="Draft", provider=provider, queries="bakery", cities="Dammam")
    make_jobs(2, provider=make_provider("yellow"))
    claims = jobs_pull(worker=worker, max_jobs=3).claims
    finish(worker, claims[0])
    finish(worker, claims[1], outcome="failed",
           error={"code": "blocked", "message": "captcha", "retryable": False})
    jobs_cancel(job_ids=[Job.objects.filter(state="queued").values_list("pk", flat=True).first()])
    return Rows(
        worker=worker, credential=WorkerCredential.objects.get(key_id=issued.key_id),
        config=worker_config_get(), provider=provider, campaign=campaign, draft_campaign=draft,
        jobs=list(Job.objects.all()), attempt=JobAttempt.objects.get(pk=claims[0].attempt_id),
    )
