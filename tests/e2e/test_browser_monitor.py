"""A real browser (Debian chromium through Playwright) watches the monitor page update live."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_jobs, make_provider, make_worker
from worker_client.client import LeadOpsClient

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

def _metric(page, name: str) -> int:
    return int(page.locator(f'[data-metric="{name}"]').inner_text().strip())


@pytest.fixture
def seeded(live_portal_url, django_user_model):
    # Database work happens before the browser starts: Playwright's sync API runs an event loop in
    # this thread, where Django refuses synchronous ORM calls.
    django_user_model.objects.create_user("watcher", password="watch-the-fleet-123", is_staff=True)
    make_jobs(2, provider=make_provider("maps"))
    _, issued = make_worker(worker_id="browser-w", rate_limit_per_min=100_000)
    return issued


def test_monitor_counters_change_live_when_a_job_completes(live_portal_url, seeded, browser):
    issued = seeded

    page = admin_login(browser, live_portal_url, "/admin/monitor/", "watcher", "watch-the-fleet-123")
    page.wait_for_selector("[data-live-ready]", timeout=10_000)
    before = {name: _metric(page, name) for name in ("queue.queued", "queue.succeeded", "today.added")}
    assert before == {"queue.queued": 2, "queue.succeeded": 0, "today.added": 0}

    with LeadOpsClient(live_portal_url, issued.worker_id, issued.key_id, issued.secret) as worker:
        claim = worker.pull(max=1)["jobs"][0]
        answer = worker.report(claim["id"], claim["attempt_id"], "succeeded",
                               [{"name": "Cafe One", "phone": "0501234567"},
                                {"name": "Cafe Two", "phone": "0507654321"}])
        reported_at = time.monotonic()
    assert answer["added"] == 2

    # Within 2 s of the report the page shows the job finished and the leads added, without reload.
    page.wait_for_function(
        """() => {
            const v = (n) => parseInt(document.querySelector(`[data-metric="${n}"]`).textContent, 10);
            return v("queue.succeeded") === 1 && v("today.added") === 2 && v("queue.queued") === 1;
        }""",
        timeout=2_000,
    )
    elapsed = time.monotonic() - reported_at
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "monitor-live.png"), full_page=True)
    assert elapsed < 2.0
    assert _metric(page, "queue.leased") == 0
    assert page.locator("#lo-live-status").inner_text() == "live"


@pytest.fixture
def fleet(live_portal_url, django_user_model):
    import datetime as dt

    from workers_mgmt.models import Worker

    django_user_model.objects.create_user("watcher", password="watch-the-fleet-123", is_staff=True)
    now = dt.datetime.now(dt.UTC)
    make_worker(worker_id="fading")
    make_worker(worker_id="steady")
    # "fading" goes overdue 12 s from now by the page's own timer (time enough to log in on a busy
    # machine); "steady" stays fresh.
    Worker.objects.filter(pk="fading").update(last_seen_at=now - dt.timedelta(seconds=108))
    Worker.objects.filter(pk="steady").update(last_seen_at=now - dt.timedelta(seconds=5))


def _announce_steady_offline() -> list[str]:
    import datetime as dt

    from django.db import connection

    from workers_mgmt.models import Worker
    from workers_mgmt.presence import workers_offline_announce

    try:
        Worker.objects.filter(pk="steady").update(
            last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        return workers_offline_announce()
    finally:
        connection.close()


def test_workers_turn_offline_by_timer_and_by_event_from_another_process(live_portal_url, fleet, browser):
    from concurrent.futures import ThreadPoolExecutor

    page = admin_login(browser, live_portal_url, "/admin/monitor/workers/", "watcher", "watch-the-fleet-123",
                       height=700)
    page.wait_for_selector("[data-live-ready]", timeout=10_000)
    status = 'tr[data-worker="{}"] [data-worker-status]'
    assert page.locator(status.format("fading")).get_attribute("data-worker-status") == "online"
    assert page.locator(status.format("steady")).get_attribute("data-worker-status") == "online"

    # The client-side timer notices the overdue heartbeat without any event.
    page.wait_for_selector(status.format("fading") + '[data-worker-status="offline"]', timeout=20_000)

    # worker.offline published by another process (here: the test, as the qcluster would) reaches the
    # page through the stored log even with the in-memory channel layer.
    with ThreadPoolExecutor(1) as pool:  # the ORM may not run in Playwright's event-loop thread
        announced = pool.submit(_announce_steady_offline).result()
    assert "steady" in announced
    page.wait_for_selector(status.format("steady") + '[data-worker-status="offline"]', timeout=3_000)
    assert page.locator('[data-metric="workers_online"]').inner_text() == "0"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "monitor-workers-live.png"), full_page=True)


def _cancel_one_and_enqueue_three() -> None:
    from django.db import connection

    from queueing.models import Job
    from queueing.services import jobs_cancel

    try:
        jobs_cancel(job_ids=[Job.objects.order_by("id").values_list("id", flat=True).first()])
        make_jobs(3, provider=make_provider("maps"))
    finally:
        connection.close()


def test_counters_follow_staff_cancel_and_enqueue_live(live_portal_url, seeded, browser):
    from concurrent.futures import ThreadPoolExecutor

    page = admin_login(browser, live_portal_url, "/admin/monitor/", "watcher", "watch-the-fleet-123")
    page.wait_for_selector("[data-live-ready]", timeout=10_000)
    assert _metric(page, "queue.queued") == 2

    with ThreadPoolExecutor(1) as pool:  # the ORM may not run in Playwright's event-loop thread
        pool.submit(_cancel_one_and_enqueue_three).result()
    # jobs.moved events move the counters; the page no longer re-reads them on a timer.
    page.wait_for_function(
        """() => {
            const v = (n) => parseInt(document.querySelector(`[data-metric="${n}"]`).textContent, 10);
            return v("queue.queued") === 4 && v("queue.cancelled") === 1 && v("provider.maps.queued") === 4;
        }""",
        timeout=20_000,
    )
    assert page.locator("[data-live-monitor]").get_attribute("data-resynced-at") is None
