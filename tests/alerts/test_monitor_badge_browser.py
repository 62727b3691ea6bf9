"""A real browser watches the monitor page's "Alerts firing" badge move on alert.firing / alert.resolved."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import (  # noqa: F401 - fixtures, shared with tests/e2e
    BASE_DIR,
    _database_url,
    admin_login,
    browser,
    e2e_redis_prefix,
    live_portal_url,
)
from tests.factories import make_worker

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def silent_fleet(live_portal_url, django_user_model):  # noqa: F811
    from workers_mgmt.models import Worker

    django_user_model.objects.create_user("watcher", password="watch-the-fleet-123", is_staff=True)
    make_worker(worker_id="quiet-1")
    make_worker(worker_id="quiet-2")
    Worker.objects.update(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=600))
    return _database_url()


def _evaluate_once(database_url: str) -> None:
    # Another process, as in production: its events reach daphne through the replay log.
    env = {**os.environ, "DATABASE_URL": database_url, "LEADOPS_DB_POOL": "false"}
    subprocess.run([sys.executable, "manage.py", "alerts_evaluate", "--once"], cwd=BASE_DIR, env=env, check=True,
                   timeout=60)


def test_the_firing_badge_counts_up_live(live_portal_url, silent_fleet, browser):  # noqa: F811
    page = admin_login(browser, live_portal_url, "/admin/monitor/", "watcher", "watch-the-fleet-123")
    page.wait_for_selector("[data-live-ready]", timeout=10_000)
    badge = page.locator('[data-metric="alerts.firing"]')
    assert badge.inner_text().strip() == "0"
    _evaluate_once(silent_fleet)
    page.wait_for_function(
        """() => document.querySelector('[data-metric="alerts.firing"]').textContent.trim() === "2" """,
        timeout=5_000)
    assert "alert" in (badge.get_attribute("class") or "")
