"""`move_to_postgres`: a portal that started on SQLite moves to PostgreSQL with every row, its
timestamps and its workers' encrypted keys, and refuses a target that is not empty (docs/DEPLOY.md).

Everything runs in processes of its own (a SQLite file as the source, a fresh PostgreSQL database as
the target), so the test means the same on both legs of the suite. It needs a PostgreSQL server:
DATABASE_URL when it is one, else LEADOPS_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.e2e.servers import BASE_DIR, free_port, server_stop, start_server
from worker_client.client import LeadOpsClient

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.real_clock]

COUNTS = """
import json
from django.apps import apps
from ingestion.models import Lead
counts = {m._meta.label: m._base_manager.count() for m in apps.get_models(include_auto_created=True)
          if m._meta.managed and not m._meta.proxy}
times = [[pk, at.isoformat()] for pk, at in Lead.objects.order_by("pk").values_list("pk", "created_at")]
print(json.dumps({"counts": counts, "lead_times": times}))
"""

EVERY_KIND = ["workers_mgmt.Worker", "workers_mgmt.WorkerCredential", "queueing.Job", "queueing.JobAttempt",
              "queueing.ReportReceipt", "ingestion.Lead", "ingestion.LeadFingerprint", "ingestion.IngestCounter",
              "ingestion.SuppressedPhone", "core.MetricCounter", "releases_app.Release", "releases_app.Rollout",
              "alerts.Alert", "alerts.Silence", "alerts.Receiver", "auth.User"]


def _admin_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        return url
    return os.environ.get("LEADOPS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def target_url():
    """A new, empty PostgreSQL database named after the suite's own (dropped afterwards)."""
    admin_url = _admin_url()
    base, _, admin_db = admin_url.rpartition("/")
    name = f"{'leadops' if admin_db == 'postgres' else admin_db}_move_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed at {admin_url}: {exc}")
        pytest.skip(f"no PostgreSQL at {admin_url}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=180)


def _last_json(done: subprocess.CompletedProcess):
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_sqlite_portal_moves_to_postgres_with_every_row_and_working_keys(target_url, tmp_path):
    common = {**os.environ, "DJANGO_SETTINGS_MODULE": "leadops.settings", "LEADOPS_MEDIA_ROOT": str(tmp_path / "media"),
              "LEADOPS_REDIS_PREFIX": f"move-{uuid.uuid4().hex[:8]}", "LEADOPS_ALERT_GROUP_WAIT_S": "0"}
    sqlite = {**common, "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}"}
    postgres = {**common, "DATABASE_URL": target_url}
    for step in (["manage.py", "migrate", "-v", "0"], ["-m", "tests.leadops.move_fill"]):
        done = _manage(sqlite, *step)
        assert done.returncode == 0, done.stderr[-3000:]
    credential = _last_json(done)
    before = _last_json(_manage(sqlite, "manage.py", "shell", "-c", COUNTS))

    summary = _last_json(_manage(sqlite, "manage.py", "move_to_postgres", "--target", target_url))
    assert summary["rows"] == sum(before["counts"].values())

    after = _last_json(_manage(postgres, "manage.py", "shell", "-c", COUNTS))
    assert after["counts"] == before["counts"]
    assert [label for label in EVERY_KIND if not after["counts"][label]] == []
    # Timestamps are the originals, not the time of the move (auto_now fields are not re-stamped).
    assert after["lead_times"] == before["lead_times"]
    # The monitor's job counts (kept by triggers) arrive as they were, not counted a second time.
    recount = _manage(postgres, "manage.py", "job_counts_reconcile")
    assert recount.returncode == 0, recount.stderr[-3000:]
    assert recount.stdout.strip().splitlines()[-1].startswith("0 correction(s)")

    again = _manage(sqlite, "manage.py", "move_to_postgres", "--target", target_url)
    assert again.returncode != 0 and "not empty" in again.stderr

    # The moved worker's secret (encrypted at rest) still signs requests the portal accepts, and
    # the moved sequences hand out new ids after the copied ones.
    port = free_port()
    server = start_server("daphne", port, postgres, log_name="move-target")
    try:
        client = LeadOpsClient(f"http://127.0.0.1:{port}", credential["worker_id"], credential["key_id"],
                               credential["secret"])
        assert client.config()["max_batch"] >= 1
        assert "server_time" in client.heartbeat(version="1.0.0", status="idle", running_jobs=0)
    finally:
        server_stop(server)
    enqueue = _manage(postgres, "manage.py", "enqueue_jobs", "--provider", "maps", "--count", "2")
    assert enqueue.returncode == 0, enqueue.stderr[-2000:]
