"""A long poll gives its pooled database connection back while it waits (PostgreSQL's pool only)."""

from __future__ import annotations

import threading

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
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def poll(credential) -> None:
        try:
            signed = SignedClient(Client(), worker_id=credential.worker_id, key_id=credential.key_id,
                                  secret=credential.secret)
            response = signed.request("POST", "/api/v1/jobs/pull", {"max": 1, "wait_s": 4})
            with lock:
                statuses.append(response.status_code)
        except BaseException as exc:  # a pool timeout surfaces here
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=poll, args=(credential,)) for credential in issued]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert statuses == [200] * 5
