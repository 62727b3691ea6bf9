"""A long poll gives its pooled database connection back while it waits (PostgreSQL's pool only)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client

from tests.factories import make_provider, make_worker
from tests.signing import SignedClient
from workers_mgmt.services import worker_config_get, worker_config_save

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def tiny_pool():
    """The default connection pool cut to two slots that time out after two seconds."""
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("pool")
    assert saved, "the PostgreSQL leg runs with the connection pool on (LEADOPS_DB_POOL)"
    connection.close()
    connection.close_pool()
    options["pool"] = {**saved, "min_size": 1, "max_size": 2, "timeout": 2}
    yield
    connection.close()
    connection.close_pool()
    options["pool"] = saved


def test_more_waiting_pollers_than_pool_slots_all_get_answers(tiny_pool):
    make_provider("maps")
    config = worker_config_get()
    config.long_poll_wait_s = 4
    worker_config_save(config=config)
    issued = [make_worker(worker_id=f"w-poll-{i}", rate_limit_per_min=10_000)[1] for i in range(5)]
    connection.close()
    def poll(credential) -> int:
        try:
            signed = SignedClient(Client(), worker_id=credential.worker_id, key_id=credential.key_id,
                                  secret=credential.secret)
            return signed.request("POST", "/api/v1/jobs/pull", {"max": 1, "wait_s": 4}).status_code
        finally:
            connection.close()

    # A pool timeout (the old behaviour) surfaces here as the exception of its poller.
    with ThreadPoolExecutor(len(issued)) as pool:
        statuses = list(pool.map(poll, issued, timeout=30))
    assert statuses == [200] * 5
