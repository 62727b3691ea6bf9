"""A reference worker stopped during its long poll, against a live portal (worker_client/cancel.py):
the poll ends at once and the server claims nothing more for it."""

from __future__ import annotations

import random
import threading
import time

import pytest

from queueing.models import Job, JobState
from queueing.services import jobs_enqueue
from tests.e2e.conftest import _portal_env, wait_until
from tests.e2e.servers import CHOSEN, free_port, server_stop, start_server
from tests.factories import make_provider, make_worker
from workers_mgmt.models import WorkerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.real_clock, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_stopped_while_long_polling_ends_its_poll_on_the_server_at_once(django_db_blocker,
                                                                                  e2e_redis_prefix):
    from worker_client.client import LeadOpsClient
    from worker_client.provider import SimulatedProvider
    from worker_client.worker import POLL_STOP_GRACE_S
    from worker_client.worker import Worker as ReferenceWorker

    provider = make_provider("maps")
    WorkerConfig.objects.update_or_create(pk=1, defaults={"long_poll_wait_s": 20, "poll_interval_s": 1})
    _, issued = make_worker(worker_id="lp-stop", rate_limit_per_min=10_000)
    port = free_port()
    server = start_server(CHOSEN, port, _portal_env(django_db_blocker, e2e_redis_prefix))
    client = LeadOpsClient(f"http://127.0.0.1:{port}", issued.worker_id, issued.key_id, issued.secret, timeout=10)
    reference = ReferenceWorker(client, SimulatedProvider(rng=random.Random(1), leads_per_job=(1, 2), delay_s=0.01),
                                batch=1)
    try:
        reference.start()
        # Idle: its second pull is a long poll, held by the server.
        assert wait_until(lambda: client.stats.snapshot()["requests"] >= 3, timeout=15)
        time.sleep(1)
        requests = client.stats.snapshot()["requests"]

        assert reference.stop(timeout=10)

        # The server saw the half-closed poll as a hang-up and closed it: the poll's thread ended
        # within the stop's grace (POLL_STOP_GRACE_S), long before the 20 s wait could have.
        polls = [thread for thread in threading.enumerate() if thread.name == "long-poll-lp-stop"]
        assert polls == [], f"the long poll still waits {POLL_STOP_GRACE_S} s after the stop"
        assert client.stats.snapshot()["requests"] - requests >= 2  # the poll, and the final heartbeat
        # Nothing is claimed any more for the stopped worker's poll.
        jobs_enqueue(provider=provider, payloads=[{"query": "tea", "city": "Jeddah"}])
        time.sleep(3)  # longer than the server's wake-up probe on SQLite (2 s)
        assert list(Job.objects.values_list("state", flat=True)) == [JobState.QUEUED]
    finally:
        reference.stop(timeout=10)
        server_stop(server)
