"""From a failing canary to a Slack message with its evidence, acknowledged from the message's link.

The canary's jobs fail through the real protocol (tests/alerts/canary.py); the evaluator's rounds run
on a frozen clock that the test moves; Slack is a real HTTP server on 127.0.0.1. Acknowledging is the
admin page the message links to, as a staff user's browser would use it: GET the confirm page, POST
its form.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from django.test import Client

from alerts.models import Alert, AlertState, Notification, RuleKind, Silence
from alerts.services import evaluator_tick, receiver_set, rule_set
from tests.alerts.canary import (
    CANARY_VERSION,
    FAILURES,
    PUBLIC_URL,
    REPEAT_S,
    canary_alert_settings,
    failing_canary_make,
    pii_in,
)
from tests.factories import only_action


@pytest.fixture
def alert_settings(settings, tmp_path):
    return canary_alert_settings(settings, str(tmp_path / "media"))


def only_error_rate() -> None:
    """The canary also opens its breaker and fills the DLQ: this test follows the error-rate alert alone."""
    for kind in RuleKind.values:
        rule_set(kind=kind, enabled=kind == RuleKind.ERROR_RATE, for_seconds=0)


def _path(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/admin/"), url
    return urlsplit(url).path


def _buttons(payload: dict) -> dict[str, str]:
    return {element["text"]["text"]: element["url"]
            for block in payload["blocks"] if block["type"] == "actions" for element in block["elements"]}


def test_failing_canary_reaches_slack_with_evidence_and_the_acknowledge_link_stops_the_repeats(
        clock, make_signed, http_receiver, alert_settings, admin_client):
    only_error_rate()
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    canary = failing_canary_make(make_signed)

    evaluator_tick()
    [first] = http_receiver.wait_for("/slack")
    [alert] = Alert.objects.filter(state=AlertState.FIRING)
    assert alert.labels == {"alertname": "error_rate", "severity": "warning", "worker": "w-canary"}
    payload = first.json()
    text = "\n".join(block.get("text", {}).get("text", "") for block in payload["blocks"])
    assert f"{CANARY_VERSION} on stable x{FAILURES}" in text
    assert f"Top reasons: blocked x{FAILURES}" in text
    assert "Workers: w-canary" in text
    buttons = _buttons(payload)
    assert _path(buttons["Newest screenshot"]) == f"/admin/queueing/jobattempt/evidence/{canary.screenshot_id}/"
    assert _path(buttons["Log tail"]).removesuffix("/change/").rsplit("/", 1)[1] in canary.failed_attempt_ids
    assert _path(buttons["Acknowledge"]) == f"/admin/alerts/alert/{alert.pk}/acknowledge/"
    assert _path(buttons["Silence 1 h"]) == f"/admin/alerts/alert/{alert.pk}/silence-1h/"
    assert pii_in(first.body.decode()) == []
    # The screenshot link opens the image for staff.
    assert admin_client.get(_path(buttons["Newest screenshot"])).status_code == 200

    clock.shift(dt.timedelta(seconds=REPEAT_S + 1))     # one repeat interval: the repeat goes out
    evaluator_tick()
    assert len(http_receiver.wait_for("/slack", count=2)) == 2

    ack_path = _path(_buttons(http_receiver.at("/slack")[1].json())["Acknowledge"])
    confirm = admin_client.get(ack_path)
    assert confirm.status_code == 200
    assert b"What will happen:" in confirm.content and b"stop repeating" in confirm.content
    assert admin_client.post(ack_path).status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == "admin" and alert.acknowledged_at is not None
    assert only_action("alert.acknowledge").object_ids == str(alert.pk)
    page = admin_client.get(f"/admin/alerts/alert/{alert.pk}/change/").content.decode()
    assert "error_rate" in page and "by admin at" in page

    clock.shift(dt.timedelta(seconds=REPEAT_S + 1))     # a second repeat interval: nothing is sent
    evaluator_tick()
    clock.shift(dt.timedelta(seconds=31))                # and another group interval, for good measure
    evaluator_tick()
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING and alert.acknowledged_at is not None
    assert len(http_receiver.at("/slack")) == 2

    history = admin_client.get(f"/admin/alerts/alert/{alert.pk}/history/").content.decode()
    notifications = list(Notification.objects.filter(alerts=alert).order_by("created_at"))
    assert [n.reason for n in notifications] == ["first", "repeat"]
    assert history.count('<tr class="delivery">') == 2
    assert "first" in history and "repeat" in history and "acknowledged-by" in history
    for notification in notifications:
        [attempt] = notification.delivery_attempts.all()
        assert attempt.ok and f"#1 ok HTTP 200 {attempt.latency_ms} ms" in history


def test_the_confirm_pages_do_nothing_on_get_and_refuse_a_post_without_csrf(
        clock, make_signed, alert_settings, client, admin_user):
    only_error_rate()
    failing_canary_make(make_signed)
    evaluator_tick()
    alert = Alert.objects.get(state=AlertState.FIRING)
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    for page in ("acknowledge", "silence-1h"):
        assert csrf_client.get(f"/admin/alerts/alert/{alert.pk}/{page}/").status_code == 200
        assert csrf_client.post(f"/admin/alerts/alert/{alert.pk}/{page}/").status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None and not Silence.objects.exists()
    # Not signed in: the admin's login page, nothing done.
    anonymous = client.get(f"/admin/alerts/alert/{alert.pk}/acknowledge/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_silence_one_hour_from_the_link_mutes_the_alert_for_an_hour(clock, make_signed, alert_settings,
                                                                     admin_client):
    only_error_rate()
    failing_canary_make(make_signed)
    evaluator_tick()
    alert = Alert.objects.get(state=AlertState.FIRING)
    page = admin_client.get(f"/admin/alerts/alert/{alert.pk}/silence-1h/")
    assert b"A silence matching every label" in page.content
    assert admin_client.post(f"/admin/alerts/alert/{alert.pk}/silence-1h/").status_code == 302
    silence = Silence.objects.get()
    assert silence.ends_at - silence.starts_at == dt.timedelta(hours=1)
    assert only_action("alert_silence.create").object_ids == str(silence.pk)
