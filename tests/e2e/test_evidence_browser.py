"""A worker uploads a screenshot of a failed attempt and reports it with its log tail; an operator sees
both on the attempt in admin, the phone number in the log masked.

Headless Debian chromium through Playwright (never a downloaded browser); the page is kept as a
screenshot in storage/test-artifacts/.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from queueing.models import AttemptEvidence
from queueing.services import evidence_purge
from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_jobs, make_provider, make_worker
from worker_client.client import LeadOpsClient
from worker_client.provider import failure_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def failed_attempt(live_portal_url, django_user_model):
    # Database work happens before the browser starts: Playwright's sync API runs an event loop in
    # this thread, where Django refuses synchronous ORM calls.
    django_user_model.objects.create_user("operator", password="see-the-evidence-123", is_staff=True,
                                          is_superuser=True)
    make_jobs(1, provider=make_provider("maps"))
    _, issued = make_worker(worker_id="evidence-w", rate_limit_per_min=100_000)
    screenshot = failure_screenshot("captcha_required")
    with LeadOpsClient(live_portal_url, issued.worker_id, issued.key_id, issued.secret) as worker:
        claim = worker.pull(max=1)["jobs"][0]
        uploaded = worker.evidence(claim["id"], claim["attempt_id"], screenshot)
        worker.report(claim["id"], claim["attempt_id"], "failed", [],
                      error={"code": "captcha_required", "message": "captcha", "retryable": True},
                      log_tail="open search query='cafes'\ncalled the listing at 0501234567\ncaptcha shown")
    evidence = AttemptEvidence.objects.get(pk=uploaded["evidence_id"])
    yield claim, evidence, screenshot
    # The live portal wrote into the default media folder: leave nothing behind.
    evidence_purge(older_than=timezone.now() + dt.timedelta(days=1))


def test_operator_sees_the_workers_screenshot_on_the_attempt(live_portal_url, failed_attempt, browser):
    claim, evidence, screenshot = failed_attempt
    page = admin_login(browser, live_portal_url, f"/admin/queueing/jobattempt/{claim['attempt_id']}/change/",
                       "operator", "see-the-evidence-123")
    thumbnail = page.locator("img.evidence-thumb")
    thumbnail.wait_for()
    # The thumbnail really loaded (a broken image has naturalWidth 0) and fits the 240 px box.
    page.wait_for_function("() => document.querySelector('img.evidence-thumb').naturalWidth > 0")
    assert thumbnail.evaluate("img => img.naturalWidth") == 240
    # The worker's log tail is on the same page, its phone number masked.
    log = page.locator("pre", has_text="captcha shown")
    log.wait_for()
    assert "+9665****4567" in log.inner_text() and "0501234567" not in page.content()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "attempt-evidence.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # The link opens the full-size image, byte for byte what the worker sent.
    href = page.locator("a.evidence-full").get_attribute("href")
    full = page.request.get(f"{live_portal_url}{href}")
    assert full.status == 200 and full.body() == screenshot
    assert "no-store" in full.headers["cache-control"]

    # Without the admin session the same URL answers nothing but the login page.
    anonymous = browser.new_context().request.get(f"{live_portal_url}{href}", max_redirects=0)
    assert anonymous.status == 302 and "/admin/login/" in anonymous.headers["location"]
    assert evidence.size == len(screenshot)
