"""End to end: reference workers (worker_client) against a live daphne portal over HTTP."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from ingestion.models import Lead
from queueing.models import AttemptState, Job, JobAttempt, JobState
from queueing.services import leases_reap
from tests.e2e.conftest import wait_until
from tests.factories import make_jobs, make_provider, make_worker
from tests.node import require_node
from worker_client.client import LeadOpsClient
from worker_client.provider import SimulatedProvider
from worker_client.worker import Worker as ReferenceWorker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def reference_worker(url: str, worker_id: str, **provider_options) -> ReferenceWorker:
    _, issued = make_worker(worker_id=worker_id, rate_limit_per_min=100_000)
    client = LeadOpsClient(url, issued.worker_id, issued.key_id, issued.secret, timeout=10)
    provider = SimulatedProvider(rng=random.Random(worker_id), leads_per_job=(3, 8), delay_s=0.0,
                                 **provider_options)
    return ReferenceWorker(client, provider, batch=5)


def test_reference_workers_drain_the_queue_over_http(worker_api_url):
    make_jobs(30, provider=make_provider("maps"))
    workers = [reference_worker(worker_api_url, f"e2e-{i}") for i in range(3)]
    for worker in workers:
        worker.start()
    try:
        assert wait_until(lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == 30, timeout=90)
    finally:
        for worker in workers:
            worker.stop(timeout=30)
    assert not Job.objects.filter(state=JobState.LEASED).exists()
    summaries = [worker.summary() for worker in workers]
    assert sum(s.get("failed_requests", 0) for s in summaries) == 0, summaries
    # Protocol v1.1: the final reports went with the pulls, in exchanges (never fell back to v1).
    assert all(worker.use_exchange for worker in workers)
    # Every lead a worker sent was counted once, as added, duplicate or invalid.
    attempts = JobAttempt.objects.filter(state=AttemptState.SUCCEEDED)
    counted = sum(a.leads_added + a.leads_duplicates + a.leads_invalid for a in attempts)
    assert counted == sum(s["leads_sent"] for s in summaries) > 0


def test_a_killed_workers_job_is_reaped_and_finished_by_another(worker_api_url):
    job = make_jobs(1, provider=make_provider("maps", lease_seconds=5))[0]
    _, issued = make_worker(worker_id="doomed", rate_limit_per_min=100_000)
    doomed = LeadOpsClient(worker_api_url, issued.worker_id, issued.key_id, issued.secret)
    claimed = doomed.pull(max=1)["jobs"]
    assert [c["id"] for c in claimed] == [job.pk]
    doomed.close()  # the process dies here: no report, no release

    time.sleep(5.5)
    assert leases_reap() == 1
    rescuer = reference_worker(worker_api_url, "rescuer")
    rescuer.start()
    try:
        assert wait_until(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, timeout=30)
    finally:
        rescuer.stop(timeout=30)
    states = dict(JobAttempt.objects.filter(job=job).values_list("worker_id", "state"))
    assert states == {"doomed": AttemptState.LOST, "rescuer": AttemptState.SUCCEEDED}


def test_node_crypto_and_fetch_sign_requests_the_server_accepts(worker_api_url):
    node = require_node()
    _, issued = make_worker(worker_id="node-interop")
    job = make_jobs(1, provider=make_provider("maps"))[0]
    script = Path(__file__).with_name("node_sign.mjs")
    result = subprocess.run(
        [node, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "LEADOPS_URL": worker_api_url, "WORKER_ID": issued.worker_id,
             "KEY_ID": issued.key_id, "SECRET": issued.secret},
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["heartbeat"]["status"] == 200 and line["config"]["status"] == 200, line
    assert [j["id"] for j in line["pulled"]["body"]["jobs"]] == [job.pk], line
    result, stranger = line["reported"]["body"]["results"]
    assert (result["job_id"], result["status"]) == (job.pk, 200), line
    assert (result["body"]["job_state"], result["body"]["added"], result["body"]["duplicates"]) == (
        "succeeded", 1, 1), line
    assert (stranger["status"], stranger["body"]["error"]["code"]) == (404, "job_not_found"), line
    # The replay of the whole exchange answers every item as the first time, and changes nothing.
    assert line["replayed"]["body"]["results"] == line["reported"]["body"]["results"], line
    assert Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED
    assert Lead.objects.filter(job_id=job.pk).count() == 1
