"""The operator's pages in a real browser (Debian chromium, the portal's CSP on): the admin index
with the Monitor first, the monitor with its last-hour chart, "why stopped" and the fleet grid, and
the wide lists fitting beside their filter at 1440 px. Screenshots land in storage/test-artifacts/.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "operate-the-fleet-123"
WIDE_LISTS = ("queueing/job", "queueing/provider", "workers_mgmt/worker", "releases_app/rollout")


def _report(worker, claim, outcome: str, error: dict | None = None) -> None:
    from queueing import services

    body = {"outcome": outcome, **({"error": error} if error else {})}
    services.job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome,
                        leads=[], error=error, idempotency_key=str(uuid.uuid4()),
                        request_hash=services.report_request_hash(job_id=claim.job_id, body=body))


def _a_rollout() -> None:
    import io

    from releases_app.services import release_publish, rollout_promote, rollout_start
    from tests.releases_app.builders import tar_artifact

    for version in ("1.0.0", "1.1.0"):
        release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)),
                        filename=f"worker-{version}.tar.gz", actor="tests")
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    rollout_start(version="1.1.0", channel_name="stable", steps=[{"percent": 50}, {"percent": 100}],
                  actor="tests")


@pytest.fixture
def operated(live_portal_url, django_user_model):
    # Database work happens before the browser starts (Playwright's loop refuses the sync ORM).
    from django.utils import timezone

    from queueing import services
    from tests.factories import make_jobs, make_provider, make_worker
    from workers_mgmt.models import Worker

    django_user_model.objects.create_superuser("operator", password=PASSWORD)
    maps = make_provider("maps", max_attempts=2)
    make_jobs(8, provider=maps, payload={"query": "specialty coffee roasters", "city": "Riyadh"})
    make_jobs(3, provider=make_provider("directory", enabled=False),
              payload={"query": "pharmacies open late", "city": "جدة"})
    worker = make_worker(worker_id="fleet-busy")[0]
    claims = services.jobs_pull(worker=worker, max_jobs=6).claims
    for claim in claims[:3]:
        _report(worker, claim, "succeeded")
    _report(worker, claims[3], "failed", {"code": "captcha", "message": "blocked", "retryable": True})
    for index in range(14):
        make_worker(worker_id=f"fleet-{index:02d}", name=f"Riyadh rack {index // 4}")
    now = timezone.now()
    Worker.objects.filter(pk__in=[f"fleet-{i:02d}" for i in range(8)]).update(last_heartbeat_at=now)
    Worker.objects.filter(pk__in=["fleet-busy", "fleet-00", "fleet-01"]).update(last_heartbeat_at=now, running_jobs=2)
    Worker.objects.filter(pk="fleet-13").update(enabled=False)
    services.breaker_force(scope="worker", key="fleet-12", action="force_open")
    _a_rollout()
    return 3


def _watch_csp(page) -> list[str]:
    """Every console error (a CSP refusal is one) of the page."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_index_and_monitor_read_like_a_product_under_the_csp(live_portal_url, operated, browser):
    succeeded = operated
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = admin_login(browser, live_portal_url, "/admin/", "operator", PASSWORD)
    errors = _watch_csp(page)
    page.set_viewport_size({"width": 1440, "height": 1000})
    index = page.goto(f"{live_portal_url}/admin/")
    assert "script-src 'self'" in index.headers["content-security-policy"]
    captions = page.locator("#content-main caption a.section").all_inner_texts()
    assert [text.strip().lower() for text in captions[:2]] == ["monitor", "job queue"]
    assert captions[-1].strip().lower() == "background tasks (internal)"
    page.screenshot(path=str(ARTIFACTS / "admin-index.png"), full_page=True)

    monitor = page.goto(f"{live_portal_url}/admin/monitor/")
    assert "script-src 'self'" in monitor.headers["content-security-policy"]
    page.wait_for_selector("[data-live-ready]", timeout=15_000)
    page.wait_for_selector('#lo-throughput-svg rect[data-outcome="succeeded"]', timeout=10_000)
    drawn = page.eval_on_selector_all('#lo-throughput-svg rect[data-outcome]',
                                      "rects => rects.map(r => [r.dataset.outcome, +r.dataset.count])")
    assert sum(count for outcome, count in drawn if outcome == "succeeded") == succeeded
    assert sum(count for outcome, count in drawn if outcome == "failed") == 1
    assert page.locator('#lo-throughput-svg polyline[data-series="claim_p95"]').count() == 1
    # Right on first render and still right after the page's own 5 s recount.
    assert page.locator('[data-metric="succeeded_last_minute"]').inner_text().strip() == str(succeeded)
    page.wait_for_timeout(5_500)
    assert page.locator('[data-metric="succeeded_last_minute"]').inner_text().strip() == str(succeeded)
    reasons = page.eval_on_selector_all("#lo-blockers li", "items => items.map(i => i.dataset.reason)")
    assert "provider_disabled" in reasons and "breaker_open" in reasons
    states = dict(page.eval_on_selector_all("[data-fleet-worker]",
                                            "cells => cells.map(c => [c.dataset.fleetWorker, c.dataset.state])"))
    assert (states["fleet-busy"], states["fleet-02"], states["fleet-09"], states["fleet-12"], states["fleet-13"]) == (
        "busy", "idle", "never", "breaker", "disabled")
    page.screenshot(path=str(ARTIFACTS / "monitor-chart.png"), full_page=True)
    assert not errors, errors


def test_wide_lists_fit_beside_their_filter_at_1440_px(live_portal_url, operated, browser):
    page = admin_login(browser, live_portal_url, "/admin/", "operator", PASSWORD)
    page.set_viewport_size({"width": 1440, "height": 900})
    for changelist in WIDE_LISTS:
        page.goto(f"{live_portal_url}/admin/{changelist}/")
        assert page.locator("#result_list tbody tr").count() > 0, changelist
        page.screenshot(path=str(ARTIFACTS / f"list-{changelist.replace('/', '-')}-1440.png"))
        table = page.locator("#result_list").bounding_box()
        panel = page.locator("#changelist-filter").bounding_box()
        assert table["x"] + table["width"] <= panel["x"], (changelist, table, panel)
    page.goto(f"{live_portal_url}/admin/queueing/job/")
    assert "specialty coffee roasters" in page.locator("#result_list").inner_text()
