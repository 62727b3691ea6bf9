"""Provider quotas: GCRA rate with a burst and a daily cap, enforced inside the claim."""

from __future__ import annotations

import datetime as dt
import math
import threading

import pytest
import time_machine
from django.db import connection

from queueing.models import JobAttempt
from queueing.services import jobs_pull
from tests.clock import local_time
from tests.factories import make_jobs, make_provider, make_worker


@pytest.mark.django_db
def test_rate_and_burst_hold_and_an_empty_queue_burns_no_tokens(clock, signed):
    provider = make_provider("maps", quota_per_min=60, quota_burst=5)
    worker, _ = make_worker(worker_id="q-1")
    # Nothing queued yet: pulls take no tokens.
    for _ in range(10):
        assert jobs_pull(worker=worker, max_jobs=10).claims == []
    make_jobs(100, provider=provider)
    assert len(jobs_pull(worker=worker, max_jobs=10).claims) == 5  # the burst
    body = signed.pull(10).json()
    assert (body["jobs"], body["retry_after_s"]) == ([], 1)
    clock.shift(dt.timedelta(seconds=3))
    assert len(jobs_pull(worker=worker, max_jobs=10).claims) == 3
    # Another provider without a quota is not held back by this one.
    make_jobs(4, provider=make_provider("free"))
    assert {c.provider for c in jobs_pull(worker=worker, max_jobs=10).claims} == {"free"}


@pytest.mark.django_db
def test_daily_cap_resets_at_local_midnight():
    # Half an hour before today's local day ends (23:30 in Riyadh is 20:30 UTC): frozen there first,
    # so the jobs are made, and are ready, at that instant.
    with time_machine.travel(local_time(23, 30), tick=False) as clock:
        provider = make_provider("maps", daily_cap=3)
        make_jobs(10, provider=provider)
        worker, _ = make_worker(worker_id="q-2")
        assert len(jobs_pull(worker=worker, max_jobs=10).claims) == 3
        result = jobs_pull(worker=worker, max_jobs=10)
        assert result.claims == [] and result.throttled_for_s == 1800
        clock.shift(dt.timedelta(minutes=31))  # 00:01 local, still 21:01 UTC on the same UTC day
        assert len(jobs_pull(worker=worker, max_jobs=10).claims) == 3


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_pullers_never_exceed_rate_times_elapsed_plus_burst(clock):
    rate_per_min, burst = 120, 7  # 2 jobs a second
    provider = make_provider("maps", quota_per_min=rate_per_min, quota_burst=burst)
    make_jobs(400, provider=provider)
    workers = [make_worker(worker_id=f"p-{i}")[0] for i in range(8)]
    step = {"n": 0, "stop": False}
    pulled_at_step = [-1] * len(workers)
    cond = threading.Condition()
    errors: list[BaseException] = []

    def run(index: int, worker) -> None:
        try:
            while True:
                with cond:
                    if step["stop"]:
                        return
                    current = step["n"]
                jobs_pull(worker=worker, max_jobs=3).claims
                with cond:
                    pulled_at_step[index] = current
                    cond.notify_all()
        except BaseException as exc:
            errors.append(exc)
            with cond:
                cond.notify_all()
        finally:
            connection.close()

    steps, step_s = 40, 0.75  # 30 s of simulated time
    ledger = []
    threads = [threading.Thread(target=run, args=(i, w)) for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    try:
        for n in range(steps + 1):
            with cond:
                step["n"] = n
                # Every puller pulls at least twice at this instant, so the quota is the only limit.
                cond.wait_for(lambda n=n: errors or all(s >= n for s in pulled_at_step), timeout=30)
                pulled_at_step[:] = [-1] * len(workers)
                cond.wait_for(lambda n=n: errors or all(s >= n for s in pulled_at_step), timeout=30)
            assert not errors, errors
            ledger.append((n * step_s, JobAttempt.objects.count()))
            if n < steps:
                clock.shift(dt.timedelta(seconds=step_s))
    finally:
        with cond:
            step["stop"] = True
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    rate_per_s = rate_per_min / 60
    for elapsed, handed_out in ledger:
        assert handed_out <= rate_per_s * elapsed + burst, (elapsed, handed_out)
        # ... and the quota is used, not starved: at most one token short of the bound.
        assert handed_out >= math.floor(rate_per_s * elapsed + burst) - 1, (elapsed, handed_out)
    assert ledger[-1][0] >= 30
    assert ledger[-1][1] == rate_per_s * 30 + burst
