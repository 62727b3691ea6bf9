"""A job claimed for a long poll whose worker hung up during the claim goes back to the queue at once
(queueing/long_poll.py): stopping a worker leaves no lease behind for the reaper."""

from __future__ import annotations

import asyncio
import time

import pytest

from queueing import long_poll
from queueing.models import AttemptState, Job, JobAttempt, JobState
from tests.factories import make_jobs, make_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_job_claimed_as_the_worker_hangs_up_is_released(monkeypatch):
    worker, issued = make_worker(worker_id="w-gone")
    (job,) = make_jobs(1)
    real_claim = long_poll._claim_again

    def slow_claim(poll):
        outcome = real_claim(poll)
        time.sleep(0.3)  # the worker hangs up while the claim is being made
        return outcome

    async def woken_at_once(timeout):
        return True

    monkeypatch.setattr(long_poll, "_claim_again", slow_claim)
    monkeypatch.setattr(long_poll.waker, "wait", woken_at_once)

    async def receive():
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    poll = long_poll.LongPoll(worker_id=worker.pk, key_id=issued.key_id, max_jobs=1, providers=None,
                              deadline=time.monotonic() + 10)
    assert asyncio.run(long_poll._wait(poll, receive)) is long_poll.GONE
    job.refresh_from_db()
    assert (job.state, job.leased_by_id, job.attempts) == (JobState.QUEUED, None, 0)
    assert JobAttempt.objects.get(job=job).state == AttemptState.RELEASED
    assert Job.objects.filter(state=JobState.LEASED).count() == 0
