"""Screenshots of the demo inbox (Admin › Demo inbox), in headless Debian chromium with the CSP on.

The demo's flaky provider fails a burst of jobs, its breaker opens, and the alert evaluator delivers
the `breaker_open` alert to the demo receiver: the inbox lists it, and its page shows what Slack,
Teams and email would have received (docs/RUNBOOK.md, "The demo").
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.e2e.conftest import ARTIFACTS, admin_login

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-pass-123"


@pytest.fixture
def inbox(live_portal_url, settings, tmp_path):
    # Made before the browser starts: a service's live events cannot be sent from Playwright's loop.
    import time_machine
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from alerts.models import DemoMessage
    from alerts.services import evaluator_tick
    from leadops.demo import demo_setup, demo_tick

    settings.MEDIA_ROOT = str(tmp_path / "media")
    get_user_model().objects.create_superuser("staff", "staff@example.com", PASSWORD)
    demo_setup()
    assert demo_tick() == "4 failed"
    evaluator_tick()
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=15), tick=True):
        evaluator_tick()
    return DemoMessage.objects.get()


def test_demo_inbox_shows_what_slack_teams_and_email_would_receive(live_portal_url, inbox, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = admin_login(browser, live_portal_url, "/admin/alerts/demomessage/", "staff", PASSWORD)
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "breaker_open" in rows.first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "demo_inbox.png"), full_page=True)

    page.goto(f"{live_portal_url}/admin/alerts/demomessage/{inbox.pk}/change/")
    assert "The circuit breaker of provider demo-flaky is open" in page.locator(".demo-slack").inner_text()
    assert "demo-flaky" in page.locator(".demo-teams").inner_text()
    assert "Subject: [FIRING:1] breaker_open (LeadOps)" in page.locator(".demo-email").inner_text()
    screenshot = ARTIFACTS / "demo_inbox_message.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert blocked == []
