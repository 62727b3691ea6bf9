"""Admin › Readiness in a real browser (Debian chromium through Playwright), and `evidence_capture`
taking its admin screenshots with that chromium. The pages are kept in storage/test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.e2e.conftest import ARTIFACTS, CHROMIUM, admin_login
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GATES = ["secrets", "updates", "breakers_dlq", "alerts", "privacy", "throttling"]


@pytest.fixture
def operator(live_portal_url, django_user_model):
    # Database work happens before the browser starts: Playwright's sync API runs an event loop in
    # this thread, where Django refuses synchronous ORM calls.
    django_user_model.objects.create_user("operator", password="go-or-no-go-123", is_staff=True,
                                          is_superuser=True)
    make_worker(worker_id="pilot-1")
    make_jobs(2, provider=make_provider("maps"))


def test_operator_sees_every_gate_with_its_why_and_evidence(live_portal_url, operator, browser):
    page = admin_login(browser, live_portal_url, "/admin/readiness/", "operator", "go-or-no-go-123")
    rows = page.locator("#lo-readiness-gates tbody tr")
    assert [rows.nth(i).get_attribute("data-gate") for i in range(rows.count())] == GATES
    assert "NO-GO" in page.locator("#lo-readiness-verdict").inner_text()
    throttling = page.locator('tr[data-gate="throttling"]')
    assert throttling.get_attribute("data-ok") == "false"
    assert "provider_set maps" in throttling.inner_text()
    # Every evidence link opens an admin page.
    href = throttling.locator("a").first.get_attribute("href")
    assert href == "/admin/queueing/provider/"
    assert "LeadOps 0.1.0" in page.locator("#site-name").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-readiness.png"), full_page=True)
    assert (ARTIFACTS / "admin-readiness.png").stat().st_size > 10_000


def test_evidence_capture_screenshots_the_admin_pages(django_user_model, settings, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is missing")
    django_user_model.objects.create_user("operator", password="go-or-no-go-123", is_staff=True,
                                          is_superuser=True)
    settings.LEADOPS_CHROMIUM = CHROMIUM
    call_command("evidence_capture", "--out", str(tmp_path), "--step", "throttling")
    root = tmp_path / timezone.localdate().isoformat()
    shots = sorted(root.rglob("*.png"))
    names = {path.relative_to(root).as_posix() for path in shots}
    assert {"screenshot-admin-readiness.png", "throttling/screenshot-providers.png"} <= names
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    index = (root / "index.md").read_text()
    assert "](throttling/screenshot-providers.png)" in index
    assert "](screenshot-admin-readiness.png)" in index
    assert "screenshot(s) of admin pages" in index
