"""A credential change reaches every server process at once (docs/API.md, "Signing"; docs/DEPLOY.md,
"The credential copy").

Two processes of the chosen server answer one worker, each holding its own copy of the worker's key
(warmed by requests first). A third process makes the change, as an operator does from a shell or
through admin on one of the nodes; the worker's very next request to *each* server is judged by the
new state. No sleep anywhere: "at once" means the next request. On the PostgreSQL leg of CI both
servers use PostgreSQL + Redis; on the SQLite leg, the embedded default (SQLite, no Redis).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import httpx
import pytest
from django.contrib.auth import get_user_model

from tests.e2e.conftest import _database_url, admin_post, admin_session
from tests.e2e.servers import BASE_DIR, CHOSEN, free_port, sessions_end, start_server
from tests.factories import make_worker
from worker_client.signing import sign_request

pytestmark = [pytest.mark.e2e, pytest.mark.real_clock, pytest.mark.django_db(transaction=True)]

HEARTBEAT = {"version": "1.0.0", "status": "idle", "running_jobs": 0}


@dataclass
class Key:
    worker_id: str
    key_id: str
    secret: str


@pytest.fixture
def portal(django_db_blocker):
    """Two server processes on the test database, and the environment a third process needs."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    if "memory" in database_url:
        pytest.skip("the servers need a file or server database")
    # One Redis key space for the three processes (they are one installation), fresh for this test.
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "leadops.settings",
           "LEADOPS_DB_POOL": "false", "LEADOPS_REDIS_PREFIX": f"every-process-{uuid.uuid4().hex[:8]}"}
    servers, urls = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            servers.append(start_server(CHOSEN, port, env, log_name=f"every-process-{name}"))
            urls.append(f"http://127.0.0.1:{port}")
    except RuntimeError as exc:
        sessions_end(servers)
        pytest.fail(str(exc))
    try:
        yield urls, env
    finally:
        sessions_end(servers)


def call(url: str, key: Key, method: str = "GET", path: str = "/api/v1/config",
         payload: dict | None = None) -> httpx.Response:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = sign_request(method=method, path=path, query="", body=body, worker_id=key.worker_id,
                           key_id=key.key_id, secret=key.secret)
    return httpx.request(method, url + path, content=body, timeout=20,
                         headers={**headers, "Content-Type": "application/json"})


def heartbeat(url: str, key: Key) -> httpx.Response:
    return call(url, key, "POST", "/api/v1/heartbeat", HEARTBEAT)


def warmed_worker(urls: list[str], worker_id: str) -> Key:
    """A new worker whose key each server holds a copy of (and of "no push key waiting"), in use."""
    _, issued = make_worker(worker_id=worker_id, rate_limit_per_min=100_000)
    key = Key(issued.worker_id, issued.key_id, issued.secret)
    warm(urls, key)
    return key


def warm(urls: list[str], key: Key) -> None:
    for url in urls:
        assert [call(url, key).status_code for _ in range(2)] == [200, 200]
        assert [heartbeat(url, key).status_code for _ in range(2)] == [200, 200]
        assert "credentials" not in heartbeat(url, key).json()


def manage(env: dict[str, str], *args: str) -> str:
    """A third process: one management command, as an operator runs it from a shell."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def shell(env: dict[str, str], code: str) -> None:
    """A third process: Python in `manage.py shell`, with `actor` (an operator at the command line)."""
    manage(env, "shell", "-c", "from core.audit import Actor\nfrom core.models import StaffSource\n"
                               "actor = Actor(name='ops', source=StaffSource.COMMAND)\n" + code)


def test_an_emergency_rotation_from_a_shell_is_refused_by_every_server_at_once(portal):
    urls, env = portal
    old = warmed_worker(urls, "every-emergency")
    new = Key(**json.loads(manage(env, "rotate_worker_secret", old.worker_id, "--emergency", "--json")))
    assert [call(url, old).status_code for url in urls] == [401, 401]
    assert [call(url, new).status_code for url in urls] == [200, 200]


def test_a_key_revoked_from_a_shell_is_refused_by_every_server_at_once(portal):
    urls, env = portal
    key = warmed_worker(urls, "every-revoke")
    shell(env, "from workers_mgmt.models import WorkerCredential\n"
               "from workers_mgmt.services import credential_revoke\n"
               f"credential_revoke(credential=WorkerCredential.objects.get(key_id='{key.key_id}'), "
               "actor='cli:ops', reason='leaked')")
    assert [call(url, key).status_code for url in urls] == [401, 401]


def test_a_worker_disabled_in_one_servers_admin_is_refused_by_every_server_at_once(portal):
    urls, _env = portal
    get_user_model().objects.create_superuser("ops", "ops@example.com", "every-process-pw")
    key = warmed_worker(urls, "every-disable")
    admin = admin_session(urls[0], "ops", "every-process-pw")
    answer = admin_post(admin, "/admin/workers_mgmt/worker/",
                        {"action": "disable_workers", "_selected_action": key.worker_id})
    assert answer.status_code == 302, answer.text[:500]
    answers = [call(url, key) for url in urls]
    assert [answer.status_code for answer in answers] == [403, 403]
    assert {answer.json()["error"]["code"] for answer in answers} == {"worker_disabled"}


def test_a_worker_disabled_from_a_shell_is_refused_by_every_server_at_once(portal):
    urls, env = portal
    key = warmed_worker(urls, "every-disable-cli")
    shell(env, "from workers_mgmt.services import workers_set_enabled\n"
               f"workers_set_enabled(worker_ids=['{key.worker_id}'], enabled=False, actor=actor)")
    assert [call(url, key).status_code for url in urls] == [403, 403]


def test_a_rate_limit_lowered_from_a_shell_holds_on_every_server_at_once(portal):
    urls, env = portal
    key = warmed_worker(urls, "every-limit")
    shell(env, "from workers_mgmt.models import Worker\nfrom workers_mgmt.services import worker_update\n"
               f"worker_update(worker=Worker.objects.get(pk='{key.worker_id}'), "
               "values={'rate_limit_per_min': 1}, actor=actor)")
    # One request a minute, burst 1, one budget for both servers: of the next three requests (two
    # to the first server, one to the second), two at least are refused. A server still holding the
    # old limit (100,000 a minute) in its copy would let all three through.
    codes = [call(urls[0], key).status_code, call(urls[0], key).status_code, call(urls[1], key).status_code]
    assert codes.count(429) >= 2, codes
    assert call(urls[1], key).status_code == 429


def test_a_rotation_started_from_a_shell_is_offered_on_the_next_heartbeat_by_every_server(portal):
    urls, env = portal
    key = warmed_worker(urls, "every-push")
    pending = json.loads(manage(env, "rotate_worker_secret", key.worker_id, "--json"))["key_id"]
    offered = [heartbeat(url, key).json().get("credentials", {}).get("pending", {}).get("key_id") for url in urls]
    assert offered == [pending, pending]
