"""On PostgreSQL, cancelling a job that a worker claims at the same moment never strands its attempt."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from queueing.models import AttemptState, Job, JobAttempt, JobState
from queueing.services import jobs_cancel, jobs_pull
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_cancel_racing_a_claim_cancels_the_new_attempt_too():
    job = make_jobs(1, provider=make_provider("maps"))[0]
    worker, _ = make_worker(worker_id="w-racer")
    claimed = threading.Event()
    errors: list[BaseException] = []

    def claim_and_hold() -> None:
        # The claim commits only after the cancel has started: the cancel's UPDATE waits on the row
        # lock, then sees the job leased with the attempt this claim created.
        try:
            with transaction.atomic():
                assert jobs_pull(worker=worker, max_jobs=1).claims
                claimed.set()
                time.sleep(0.8)
        except BaseException as exc:
            errors.append(exc)
            claimed.set()
        finally:
            connection.close()

    thread = threading.Thread(target=claim_and_hold)
    thread.start()
    claimed.wait(10)
    assert jobs_cancel(job_ids=[job.pk]) == 1
    thread.join(10)
    assert not errors, errors
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    attempt = JobAttempt.objects.get(job=job)
    assert attempt.state == AttemptState.CANCELLED
    assert not JobAttempt.objects.filter(state=AttemptState.RUNNING).exists()
    assert Job.objects.filter(state=JobState.LEASED).count() == 0
