"""On PostgreSQL, the maintained job counts stay exact under concurrent transitions and compactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from queueing.selectors import job_state_counts, job_state_recount
from queueing.services import (
    job_report,
    job_state_counts_compact,
    job_state_counts_reconcile,
    jobs_pull,
    report_request_hash,
)
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_eight_workers_and_a_compactor_at_once_leave_the_counts_equal_to_a_recount():
    make_jobs(400, provider=make_provider("maps", max_attempts=2))
    make_jobs(100, provider=make_provider("dir", max_attempts=2))
    workers = [make_worker(worker_id=f"jc-{i}")[0] for i in range(8)]
    errors: list[BaseException] = []
    done = threading.Event()
    barrier = threading.Barrier(len(workers) + 1)

    def work(worker, index: int) -> None:
        try:
            barrier.wait()
            turn = 0
            while claims := jobs_pull(worker=worker, max_jobs=5).claims:
                for claim in claims:
                    turn += 1
                    failed = (turn + index) % 4 == 0  # a quarter fail: retried once, then dead
                    job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id,
                               outcome="failed" if failed else "succeeded", leads=[],
                               error={"code": "x", "retryable": False} if failed else None,
                               idempotency_key=str(claim.attempt_id),
                               request_hash=report_request_hash(job_id=claim.job_id, body={"t": turn}))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def compact() -> None:
        try:
            barrier.wait()
            while not done.is_set():
                job_state_counts_compact()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(worker, i)) for i, worker in enumerate(workers)]
    compactor = threading.Thread(target=compact)
    for thread in [*threads, compactor]:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    compactor.join(timeout=60)
    assert not errors, errors
    assert job_state_counts() == job_state_recount()
    assert sum(job_state_counts().values()) == 500
    assert job_state_counts_reconcile() == []  # nothing to correct: no transition was lost or doubled
