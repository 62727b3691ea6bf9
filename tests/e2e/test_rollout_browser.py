"""A screenshot of the rollout page in admin, in headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import io

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_worker

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def moving_rollout(live_portal_url, settings, tmp_path):
    # Database work happens before the browser starts (Playwright's sync API runs an event loop here).
    from django.contrib.auth import get_user_model

    from releases_app.services import (
        release_publish,
        rollout_promote,
        rollout_start,
        update_report_record,
    )
    from tests.releases_app.builders import tar_artifact

    settings.MEDIA_ROOT = str(tmp_path / "media")
    get_user_model().objects.create_superuser("staff", "staff@example.com", "browser-pass-123")
    workers = [make_worker(worker_id=f"w-{index:02d}")[0] for index in range(1, 11)]
    for version in ("1.0.0", "1.1.0"):
        release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)), filename="w.tar.gz",
                        actor="staff")
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="staff")
    rollout_promote(channel_name="stable", actor="staff")
    rollout = rollout_start(version="1.1.0", channel_name="stable", canary=["w-03", "w-07"], actor="staff",
                            steps=[{"canary": ["w-03", "w-07"], "hold_s": 1800, "approve": True},
                                   {"percent": 50, "hold_s": 1800}, {"percent": 100}])
    rollout_promote(channel_name="stable", actor="staff")
    reached = set(rollout.targets.values_list("worker_id", flat=True))
    for worker in workers:
        if worker.pk in reached:
            ok = worker.pk != "w-07"
            update_report_record(worker=worker, version="1.1.0", stage="installed", ok=ok,
                                 details={} if ok else {"error": "disk full"})
    return rollout


def test_rollout_page_shows_progress_and_buttons(live_portal_url, moving_rollout, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "rollout_page.png"
    screenshot.unlink(missing_ok=True)
    page = admin_login(browser, live_portal_url, f"/admin/releases_app/rollout/{moving_rollout.pk}/change/",
                       "staff", "browser-pass-123")
    page.wait_for_selector("#rollout-steps")
    assert page.locator("#rollout-page").get_attribute("data-step") == "1"
    rows = page.locator("#rollout-steps tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).locator("td.added").inner_text() == "2"
    assert rows.nth(1).locator("td.added").inner_text() == "3"
    assert rows.nth(0).locator("td.failed").inner_text() == "1"
    assert page.locator("#rollout-targets code").count() == 5
    assert page.get_by_role("button", name="Promote now").is_visible()
    assert page.get_by_role("button", name="Roll back").is_visible()
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
