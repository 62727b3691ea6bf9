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


def test_a_job_claimed_then_hung_up_on_while_the_standin_fields_are_read_is_released(monkeypatch):
    """A stopping reference worker half-closes its poll (worker_client/cancel.py); the server may see it
    after the claim, while it reads the heartbeat's fields for the answer. Nothing is sent then, and
    the job goes back to the queue."""
    worker, issued = make_worker(worker_id="w-gone-late")
    (job,) = make_jobs(1)
    real_standin = long_poll._standin_fresh

    def slow_standin(poll):
        fields = real_standin(poll)
        time.sleep(0.3)  # the worker hangs up meanwhile
        return fields

    async def woken_at_once(timeout):
        return True

    monkeypatch.setattr(long_poll, "_standin_fresh", slow_standin)
    monkeypatch.setattr(long_poll.waker, "wait", woken_at_once)
    poll = long_poll.LongPoll(worker_id=worker.pk, key_id=issued.key_id, max_jobs=1, providers=None,
                              deadline=time.monotonic() + 10, stands_in=True)

    async def django(scope, receive, send):
        scope[long_poll.SCOPE_WAIT] = poll
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"jobs": [], "retry_after_s": 0}'})

    disconnect_after = [0.1]

    async def receive():
        await asyncio.sleep(disconnect_after.pop() if disconnect_after else 60)
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": long_poll.PULL_PATH, "headers": []}
    asyncio.run(long_poll.LongPollMiddleware(django)(scope, receive, send))

    assert sent == []
    job.refresh_from_db()
    assert (job.state, job.leased_by_id, job.attempts) == (JobState.QUEUED, None, 0)
    assert JobAttempt.objects.get(job=job).state == AttemptState.RELEASED
