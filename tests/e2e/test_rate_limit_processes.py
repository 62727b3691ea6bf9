"""Four server processes against one PostgreSQL: a worker never gets more than its rate limit.

The limiter is GCRA (core/ratelimit.py): with `rate` per minute and a burst of `b`, at most
`b + W * rate / 60` requests are accepted in any window of W seconds, whichever process answers.
Both shared stores are checked: Redis (when REDIS_URL is set) and the database UPSERT.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import httpx
import pytest

from tests.e2e.conftest import BASE_DIR, _database_url, _free_port
from tests.e2e.servers import CHOSEN, sessions_end, start_server
from tests.factories import make_worker
from worker_client.signing import sign_request

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES = 4
RATE_PER_MIN = 120  # one request every 0.5 s on average
BURST = max(1, RATE_PER_MIN // 10)  # what workers_mgmt.auth gives a worker
DURATION_S = 6.0
THREADS = 6


def start_portals(count: int, env: dict[str, str]) -> tuple[list[str], list[subprocess.Popen]]:
    """`count` processes of the chosen server (tests/e2e/servers.py), each on its own port."""
    urls: list[str] = []
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            port = _free_port()
            processes.append(start_server(CHOSEN, port, env, timeout=60, log_name=f"ratelimit-{CHOSEN}"))
            urls.append(f"http://127.0.0.1:{port}")
    except RuntimeError as exc:
        sessions_end(processes)
        pytest.fail(str(exc))
    return urls, processes


@pytest.fixture(params=["redis", "database"])
def portals(request, django_db_blocker):
    if request.param == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    (BASE_DIR / "test-artifacts").mkdir(exist_ok=True)
    with django_db_blocker.unblock():
        database_url = _database_url()
    # A small pool per process: the PostgreSQL server is shared, and a connection per request
    # thread would run it out of connections before the limiter is ever tested.
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "leadops.settings",
           "LEADOPS_DB_POOL": "true", "LEADOPS_DB_POOL_MIN": "1", "LEADOPS_DB_POOL_MAX": "3",
           # One key space shared by the four processes (that is the point), fresh for this test.
           "LEADOPS_REDIS_PREFIX": f"leadops-rl-{os.getpid()}-{time.time_ns()}"}
    if request.param == "database":
        env["REDIS_URL"] = ""
    urls, processes = start_portals(PROCESSES, env)
    try:
        yield request.param, urls
    finally:
        sessions_end(processes)


def test_a_worker_never_gets_more_than_its_rate_limit_across_four_processes(portals):
    backend, urls = portals
    # A fresh worker id per run, so limiter state left in a shared Redis by an earlier run is not read.
    _, issued = make_worker(worker_id=f"rl-{backend}-{os.getpid()}-{int(time.time())}",
                            rate_limit_per_min=RATE_PER_MIN)
    accepted: list[float] = []
    limited: list[str] = []
    other: list[int] = []
    lock = threading.Lock()
    start = time.monotonic() + 0.5
    stop = start + DURATION_S

    def hammer(index: int) -> None:
        with httpx.Client(timeout=10) as http:
            sent = 0
            while time.monotonic() < start:
                time.sleep(0.01)
            while time.monotonic() < stop:
                url = urls[(index + sent) % len(urls)]
                sent += 1
                headers = sign_request(method="GET", path="/api/v1/config", query="", body=b"",
                                       worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)
                response = http.get(f"{url}/api/v1/config", headers=headers)
                answered = time.monotonic()
                with lock:
                    if response.status_code == 200:
                        accepted.append(answered)
                    elif response.status_code == 429:
                        limited.append(response.headers.get("Retry-After", ""))
                    else:
                        other.append(response.status_code)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not other, other
    assert limited and all(value.isdigit() and int(value) >= 1 for value in limited), limited[:5]
    accepted.sort()
    elapsed = accepted[-1] - start
    interval = 60.0 / RATE_PER_MIN
    # Every window that starts at an accepted request; one request of slack for the time between
    # the server's decision and the client seeing the answer.
    for window in (1.0, 2.0, 3.0, DURATION_S):
        for i, first in enumerate(accepted):
            inside = sum(1 for t in accepted[i:] if t - first <= window)
            assert inside <= BURST + window / interval + 1, (backend, window, inside)
    assert len(accepted) <= BURST + elapsed / interval + 1, (backend, len(accepted))
    # And the limit is a rate, not a wall: the steady rate was actually served.
    assert len(accepted) >= BURST + (DURATION_S / interval) * 0.5, (backend, len(accepted), len(limited))
