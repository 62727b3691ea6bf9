"""`make run` as a newcomer sees it: the portal answers and simulated workers finish jobs."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import _free_port

BASE_DIR = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def succeeded_jobs(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute("SELECT count(*) FROM queueing_job WHERE state='succeeded'").fetchone()[0]
    except sqlite3.Error:
        return 0


def demo_canary_installs(db_path: Path) -> int:
    """Installs of the demo rollout's new release reported by its canary (docs/RELEASES.md, "The rollout model")."""
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute(
                "SELECT count(*) FROM releases_app_workerreleasestatus s JOIN releases_app_rollout r"
                " ON r.id = (SELECT max(id) FROM releases_app_rollout)"
                " JOIN releases_app_release v ON v.id = r.release_id"
                " WHERE s.worker_id = 'demo-updater-1' AND s.version = v.version AND s.install_ok"
            ).fetchone()[0]
    except sqlite3.Error:
        return 0


def demo_canary_runs_new_release(db_path: Path) -> bool:
    """The canary's heartbeat reports the demo rollout's release: its agent restarted into it."""
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return bool(db.execute(
                "SELECT count(*) FROM workers_mgmt_worker w JOIN releases_app_release v"
                " ON v.id = (SELECT release_id FROM releases_app_rollout ORDER BY id DESC LIMIT 1)"
                " WHERE w.id = 'demo-updater-1' AND w.reported_version = v.version"
            ).fetchone()[0])
    except sqlite3.Error:
        return False


def test_devserver_serves_admin_and_moves_jobs_then_stops_everything(tmp_path):
    db_path = tmp_path / "run.sqlite3"
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "LEADOPS_PORT": str(port),
           "LEADOPS_MEDIA_ROOT": str(tmp_path / "media")}
    env.pop("REDIS_URL", None)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "leadops.devserver"], cwd=BASE_DIR, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and succeeded_jobs(db_path) < 5:
            assert process.poll() is None, log_path.read_text()[-3000:]
            time.sleep(1)
        assert succeeded_jobs(db_path) >= 5, log_path.read_text()[-3000:]
        # The demo release reached its canary: a rollout a newcomer can watch (docs/RELEASES.md).
        while time.monotonic() < deadline + 30 and not demo_canary_installs(db_path):
            time.sleep(1)
        assert demo_canary_installs(db_path) == 1, log_path.read_text()[-3000:]
        # Its supervising agent runs that release's code now (docs/RELEASES.md, "The supervising agent").
        while time.monotonic() < deadline + 60 and not demo_canary_runs_new_release(db_path):
            time.sleep(1)
        assert demo_canary_runs_new_release(db_path), log_path.read_text()[-3000:]
        output = log_path.read_text()
        assert "is rolling out on channel 'demo'" in output
        login = re.search(r"login: (\S+) / (\S+)", output)
        assert login, output[-2000:]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            page = http.get("/admin/login/")
            assert page.status_code == 200
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            response = http.post("/admin/login/?next=/admin/", data={
                "username": login.group(1), "password": login.group(2), "csrfmiddlewaretoken": token,
                "next": "/admin/"}, headers={"Referer": f"http://127.0.0.1:{port}/admin/login/"},
                follow_redirects=True)
            assert response.status_code == 200 and "Log out" in response.text
            assert http.get("/admin/queueing/job/").status_code == 200
            assert http.get("/static/admin/css/base.css").status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    # Ctrl-C stopped every process it started, and the simulated workers gave their leases back.
    with sqlite3.connect(db_path) as db:
        leased = db.execute("SELECT id, leased_by_id, lease_expires_at FROM queueing_job WHERE state='leased'"
                            ).fetchall()
    assert leased == [], f"still leased after the stop (job, worker, lease end): {leased}\n" + (
        log_path.read_text()[-3000:])
