"""Two app processes and two q clusters against one PostgreSQL and Redis: one truth (docs/DEPLOY.md).

What one node does, the other sees; what is limited, is limited across both: claims exactly once,
provider quotas and worker rate limits global, each alert notification sent once, a credential
rotation and a release rollout started through node A answered with their new state by node B.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from alerts.services import receiver_set
from queueing.services import jobs_enqueue
from releases_app.models import Release
from releases_app.services import release_publish
from tests.alerts.factories import silent_workers
from tests.e2e.conftest import admin_post, admin_session
from tests.e2e.servers import BASE_DIR, CHOSEN, LOG_DIR, free_port, sessions_end, start_server
from tests.factories import make_provider, make_worker
from tests.releases_app.builders import tar_artifact
from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.errors import RateLimited

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.real_clock, pytest.mark.slow,
              pytest.mark.django_db(transaction=True)]

NO_RETRY = RetryPolicy(max_attempts=1)


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _managed(args: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
    log = open(LOG_DIR / f"two-nodes-{name}.log", "wb")  # noqa: SIM115
    # A session of its own: the q cluster forks workers, and all of them must end with the test.
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _in_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def _client(url: str, issued, **kwargs) -> LeadOpsClient:
    return LeadOpsClient(url, issued.worker_id, issued.key_id, issued.secret, retry=NO_RETRY, **kwargs)


@pytest.fixture
def two_nodes(tmp_path):
    """Two nodes of the production server (`CHOSEN`, docs/DEPLOY.md), two q clusters, two alert evaluators."""
    LOG_DIR.mkdir(exist_ok=True)
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "leadops.settings",
           "LEADOPS_REDIS_PREFIX": f"two-nodes-{uuid.uuid4().hex[:8]}", "LEADOPS_MEDIA_ROOT": str(tmp_path),
           "LEADOPS_ALERT_GROUP_WAIT_S": "1",
           "LEADOPS_ALERT_GROUP_INTERVAL_S": "1", "LEADOPS_ALERT_EVAL_INTERVAL_S": "0.3",
           "LEADOPS_DB_POOL_MAX": "6"}
    servers, others = [], []
    try:
        for node in ("a", "b"):
            port = free_port()
            servers.append(start_server(CHOSEN, port, env, log_name=f"two-nodes-{node}"))
        for index in (1, 2):
            others.append(_managed(["qcluster"], env, f"qcluster{index}"))
            others.append(_managed(["alerts_evaluate"], env, f"evaluator{index}"))
        urls = [_url_of(server) for server in servers]
        yield urls
    finally:
        sessions_end([*servers, *others])


def _url_of(process: subprocess.Popen) -> str:
    args = process.args
    if "-p" in args:
        return f"http://127.0.0.1:{args[args.index('-p') + 1]}"
    return f"http://{args[args.index('-b') + 1]}"


def test_two_nodes_share_claims_limits_alerts_rotation_and_rollouts(two_nodes, http_receiver, tmp_path, settings):
    node_a, node_b = two_nodes
    nodes = [node_a, node_b]
    # Started first, checked last: each alert notification is sent once though two evaluator
    # processes run every 0.3 s and both q clusters run the evaluator's schedule too.
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    silent = silent_workers(3, silent_for_s=600, prefix="silent")

    # Claims: 6 workers pull from both nodes at once; every job is handed out exactly once.
    jobs = {job.pk for job in jobs_enqueue(provider=make_provider("maps"), payloads=[{"n": n} for n in range(120)])}
    claimed: list[int] = []
    pullers = [make_worker(worker_id=f"puller-{index}", rate_limit_per_min=100_000)[1] for index in range(6)]

    def pull_until_empty(index: int) -> None:
        client = _client(nodes[index % 2], pullers[index // 2])
        empty = 0
        while empty < 3:
            got = [job["id"] for job in client.pull(max=5, providers=["maps"])["jobs"]]
            claimed.extend(got)
            empty = 0 if got else empty + 1

    _in_threads(12, pull_until_empty)
    assert sorted(claimed) == sorted(jobs), Counter(claimed).most_common(3)

    # A provider quota of 6 a minute with a burst of 5 is one budget for both nodes.
    make_provider("quota", quota_per_min=6, quota_burst=5)
    jobs_enqueue(provider=make_provider("quota"), payloads=[{}] * 40)
    quota_claims: list[int] = []
    quota_worker = make_worker(worker_id="quota-puller", rate_limit_per_min=100_000)[1]
    started = time.monotonic()

    def pull_quota(index: int) -> None:
        client = _client(nodes[index % 2], quota_worker)
        while time.monotonic() - started < 3:
            quota_claims.extend(job["id"] for job in client.pull(max=10, providers=["quota"])["jobs"])

    _in_threads(4, pull_quota)
    assert 5 <= len(quota_claims) <= 5 + 1, quota_claims

    # A worker's rate limit (60 a minute: a burst of 6) is one budget for both nodes.
    limited = make_worker(worker_id="limited", rate_limit_per_min=60)[1]
    accepted: list[int] = []
    refused: list[int] = []
    started = time.monotonic()
    # Each node serves the worker once first, from the one budget. (Left to the race below, one node
    # could take every token before the other's first request: CI saw node B refused throughout.)
    for index, node in enumerate(nodes):
        _client(node, limited).config()
        accepted.append(index)

    def hammer(index: int) -> None:
        client = _client(nodes[index % 2], limited)
        while time.monotonic() - started < 3:
            try:
                client.config()
                accepted.append(index % 2)
            except RateLimited:
                refused.append(index % 2)

    _in_threads(4, hammer)
    elapsed = time.monotonic() - started
    assert len(accepted) <= 6 + int(elapsed) + 1, (len(accepted), elapsed)
    assert refused and set(accepted) == {0, 1}, (accepted, refused)

    # A credential rotation started through node A's admin: node B pushes the pending key, and both
    # nodes accept the worker's requests signed with it.
    user_model = get_user_model()
    user_model.objects.create_superuser("ops", "ops@example.com", "two-nodes-pw")
    admin = admin_session(node_a, "ops", "two-nodes-pw")
    _, rotating = make_worker(worker_id="rotating", rate_limit_per_min=100_000)
    answer = admin_post(admin, "/admin/workers_mgmt/worker/rotating/rotate/", {"mode": "push", "grace_hours": "1"})
    assert answer.status_code == 302, answer.text[:500]
    at_b = _client(node_b, rotating)
    at_b.heartbeat(version="1.0.0", status="idle", running_jobs=0)
    assert at_b.key_id != rotating.key_id, "node B did not push the key node A's admin made pending"
    at_a = _client(node_a, rotating)
    at_a.use_credentials(at_b.key_id, at_b._credentials.secret)
    assert at_a.config() and at_b.config()

    # A rollout started through node A's admin is what node B answers an update check with.
    settings.MEDIA_ROOT = str(tmp_path)
    release_publish(version="1.0.0", fileobj=io.BytesIO(tar_artifact("1.0.0")), filename="w.tar.gz", actor="tests")
    release = Release.objects.get(version="1.0.0")
    _, updating = make_worker(worker_id="updating", rate_limit_per_min=100_000)  # a rollout reaches existing workers
    answer = admin_post(admin, "/admin/releases_app/rollout/start/",
                         {"release": str(release.pk), "channel": "stable", "canary": "",
                          "steps": json.dumps([{"percent": 100}])})
    assert answer.status_code == 302, answer.text[-1500:]
    check = _client(node_b, updating).update_check(version="0.9.0")
    assert (check["target"] or {}).get("version") == "1.0.0", check
    assert check["manifest"]["signed"]["release"]["version"] == "1.0.0"

    def firing() -> Counter:
        return Counter(alert["labels"].get("worker") for post in http_receiver.at("/hook")
                       for alert in post.json()["alerts"] if alert["status"] == "firing")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(firing()[worker] for worker in silent):
            break
        time.sleep(0.3)
    time.sleep(2)  # more rounds of both evaluators
    labels = firing()
    assert {worker: labels[worker] for worker in silent} == dict.fromkeys(silent, 1), labels
    assert max(labels.values()) == 1, labels
