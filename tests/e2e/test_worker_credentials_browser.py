"""A screenshot of a worker's credentials panel, in headless Debian Chromium driven by Playwright.

Never `playwright install`: the system browser is used through `executable_path`.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_worker
from workers_mgmt.models import CredentialState, WorkerCredential
from workers_mgmt.services import auth_failure_record, credential_promote, credential_rotate

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rotated_worker(live_portal_url):
    # Database work happens before the browser starts: Playwright's sync API runs an event loop in
    # this thread, where Django refuses synchronous ORM calls.
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("staff", "staff@example.com", "browser-pass-123")
    worker, _ = make_worker(worker_id="screen-1")
    first = credential_rotate(worker=worker, actor="staff", grace_hours=12)
    credential_promote(credential=WorkerCredential.objects.get(key_id=first.key_id))
    pending = credential_rotate(worker=worker, actor="staff")
    auth_failure_record(worker_id="screen-1", reason="bad_signature", ip="10.0.0.66")
    return first, pending


def test_worker_page_shows_credentials_buttons_and_audit_trail(live_portal_url, rotated_worker, browser):
    first, pending = rotated_worker
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "worker_credentials_panel.png"
    screenshot.unlink(missing_ok=True)

    page = admin_login(browser, live_portal_url, "/admin/workers_mgmt/worker/screen-1/change/", "staff",
                       "browser-pass-123")
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
    assert screenshot.stat().st_size > 10_000
