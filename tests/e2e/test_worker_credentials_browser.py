"""A screenshot of a worker's credentials panel, in headless Debian Chromium driven by Playwright.

Never `playwright install`: the system browser is used through `executable_path`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.factories import make_worker
from workers_mgmt.models import CredentialState, WorkerCredential
from workers_mgmt.services import auth_failure_record, credential_promote, credential_rotate

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "storage" / "test-artifacts"


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium is not installed")
def test_worker_page_shows_credentials_buttons_and_audit_trail(live_portal_url):
    from django.contrib.auth import get_user_model
    from playwright.sync_api import sync_playwright

    get_user_model().objects.create_superuser("staff", "staff@example.com", "browser-pass-123")
    worker, _ = make_worker(worker_id="screen-1")
    first = credential_rotate(worker=worker, actor="staff", grace_hours=12)
    credential_promote(credential=WorkerCredential.objects.get(key_id=first.key_id))
    pending = credential_rotate(worker=worker, actor="staff")
    auth_failure_record(worker_id="screen-1", reason="bad_signature", ip="10.0.0.66")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "worker_credentials_panel.png"
    screenshot.unlink(missing_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{live_portal_url}/admin/login/?next=/admin/workers_mgmt/worker/screen-1/change/")
            page.fill("#id_username", "staff")
            page.fill("#id_password", "browser-pass-123")
            page.click("input[type=submit]")
            page.wait_for_selector("#credentials-panel")
            panel = page.locator("#credentials-panel")
            states = panel.locator("tr[data-key-id]").evaluate_all(
                "rows => rows.map(r => [r.dataset.keyId, r.dataset.state])")
            assert dict(states)[pending.key_id] == CredentialState.PENDING
            assert dict(states)[first.key_id] == CredentialState.CURRENT
            assert panel.locator("tr[data-state=previous] td").nth(4).inner_text().endswith("left")
            assert panel.get_by_role("button", name="Emergency rotate").is_visible()
            assert panel.get_by_role("button", name="Revoke").count() == 3
            assert panel.locator("#credential-audit tr[data-kind=auth_failed]").count() == 1
            assert pending.secret not in page.content()
            panel.screenshot(path=str(screenshot))
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
