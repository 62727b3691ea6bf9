"""Evidence and action links in each receiver's own format, and no personal data in any of them.

The failing canary of tests/alerts/canary.py makes three alerts (error rate of the canary, its
breaker open, the provider's DLQ growth); each message goes over the real protocol to a local HTTP
or SMTP server. The canary's error message and log tail name a phone number and the stable worker's
leads carry a phone and a name: none of it may reach a message (docs/PRIVACY.md).
"""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.models import Alert, AlertEvent, AlertState, Notification, RuleKind
from alerts.services import alert_acknowledge, evaluator_tick, notifications_deliver, receiver_set, rule_set
from core.audit import Actor
from queueing.services import breaker_reset
from tests.alerts.canary import (
    CANARY_VERSION,
    FAILURES,
    PUBLIC_URL,
    canary_alert_settings,
    canary_fails,
    failing_canary_make,
    pii_in,
)

ALERTNAMES = {"error_rate", "breaker_open", "dlq_growth"}
EVIDENCE = [f"Top reasons: blocked x{FAILURES}", f"{CANARY_VERSION} on stable x{FAILURES}", "w-canary x"]


@pytest.fixture
def alert_settings(settings, tmp_path):
    canary_alert_settings(settings, str(tmp_path / "media"))
    for kind in (RuleKind.ERROR_RATE, RuleKind.BREAKER_OPEN, RuleKind.DLQ_GROWTH):
        rule_set(kind=kind, for_seconds=0)
    return settings


def _alert_links(alertname: str) -> list[str]:
    alert = Alert.objects.get(labels__alertname=alertname)
    return [f"{PUBLIC_URL}/admin/alerts/alert/{alert.pk}/acknowledge/",
            f"{PUBLIC_URL}/admin/alerts/alert/{alert.pk}/silence-1h/",
            f"{PUBLIC_URL}/admin/queueing/jobattempt/evidence/"]


@pytest.fixture
def delivered(db, clock, make_signed, alert_settings, http_receiver, smtp_receiver):
    """Every message of the first round, by receiver kind: a list of (alertname, raw body text)."""
    for kind in ("slack", "teams", "webhook"):
        receiver_set(name=kind, kind=kind, url=http_receiver.url(f"/{kind}"),
                     secret="k" if kind == "webhook" else None)
    receiver_set(name="mail", kind="email", addresses="oncall@example.com")
    failing_canary_make(make_signed)
    evaluator_tick()
    assert {a.labels["alertname"] for a in Alert.objects.filter(state=AlertState.FIRING)} == ALERTNAMES
    for _ in range(2):  # Slack takes one message a second per webhook
        clock.shift(dt.timedelta(seconds=1))
        notifications_deliver()
    bodies: dict[str, list[str]] = {}
    for kind in ("slack", "teams", "webhook"):
        bodies[kind] = [r.body.decode() for r in http_receiver.wait_for(f"/{kind}", count=3)]
    bodies["email"] = [m.message.get_payload(decode=True).decode() + m.message["Subject"]
                       for m in smtp_receiver.wait_for(3)]
    assert all(len(found) == 3 for found in bodies.values()), {k: len(v) for k, v in bodies.items()}
    return bodies


def _check(bodies: list[str]) -> None:
    for body in bodies:
        assert pii_in(body) == [], body
        alertname = next(name for name in ALERTNAMES if name in body)
        for line in EVIDENCE:
            assert line in body, (line, body)
        for link in _alert_links(alertname):
            assert link in body, (link, body)
        assert "/admin/queueing/jobattempt/" in body and "/change/" in body  # the log tail


def test_slack_shows_evidence_in_the_section_and_the_links_as_buttons(delivered):
    _check(delivered["slack"])
    assert all('"type":"actions"' in body and '"type":"button"' in body for body in delivered["slack"])


def test_teams_card_shows_evidence_and_open_url_actions(delivered):
    _check(delivered["teams"])
    assert all('"type":"ActionSet"' in body and '"Action.OpenUrl"' in body for body in delivered["teams"])


def test_webhook_alerts_carry_evidence_links_and_the_alert_page_as_generator_url(delivered):
    _check(delivered["webhook"])
    assert all('"generatorURL":"https://ops.example.test/admin/alerts/alert/' in body
               for body in delivered["webhook"])


def test_email_lists_evidence_and_links_as_text(delivered):
    _check(delivered["email"])
    assert all("Acknowledge: https://" in body and "Silence 1 h: https://" in body
               for body in delivered["email"])


def test_without_a_public_url_slack_shows_the_links_as_paths(db, clock, make_signed, alert_settings,
                                                             http_receiver):
    alert_settings.LEADOPS_PUBLIC_URL = ""
    rule_set(kind=RuleKind.BREAKER_OPEN, enabled=False)
    rule_set(kind=RuleKind.DLQ_GROWTH, enabled=False)
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    failing_canary_make(make_signed)
    evaluator_tick()
    [received] = http_receiver.wait_for("/slack")
    alert = Alert.objects.get(state=AlertState.FIRING)
    assert f"Acknowledge: /admin/alerts/alert/{alert.pk}/acknowledge/" in received.body.decode()
    assert '"type":"actions"' not in received.body.decode()


def test_an_acknowledged_alert_notifies_again_when_its_top_reason_changes(db, clock, make_signed,
                                                                         alert_settings, http_receiver):
    rule_set(kind=RuleKind.BREAKER_OPEN, enabled=False)
    rule_set(kind=RuleKind.DLQ_GROWTH, enabled=False)
    # The provider's share (60 failed of 85 at the end) stays below: the canary's alert is the only one.
    rule_set(kind=RuleKind.ERROR_RATE, threshold=0.75)
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    scenario = failing_canary_make(make_signed)
    evaluator_tick()
    alert = Alert.objects.get(state=AlertState.FIRING)
    alert_acknowledge(alert_id=alert.pk, actor=Actor(name="oncall", source="admin"))

    # Staff close the canary's breaker; it fails again, with another reason and twice as often: the
    # acknowledgement no longer holds.
    breaker_reset(scope="worker", key="w-canary")
    canary_fails(scenario.canary, code="timeout", count=2 * FAILURES)
    clock.shift(dt.timedelta(seconds=121))
    evaluator_tick()
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    event = AlertEvent.objects.get(alert=alert, kind="unacknowledged")
    assert event.detail == "it changed: top reason blocked -> timeout"
    assert len(http_receiver.wait_for("/slack", count=2)) == 2
    assert Notification.objects.filter(alerts=alert).order_by("-created_at").first().reason == "repeat"
    assert "Top reasons: timeout x40, blocked x20" in http_receiver.at("/slack")[1].body.decode()


def test_an_acknowledgement_ends_when_its_alert_resolves(db, clock, make_signed, alert_settings):
    rule_set(kind=RuleKind.BREAKER_OPEN, enabled=False)
    rule_set(kind=RuleKind.DLQ_GROWTH, enabled=False)
    rule_set(kind=RuleKind.ERROR_RATE, threshold=0.75)
    scenario = failing_canary_make(make_signed)
    evaluator_tick()
    alert = Alert.objects.get(state=AlertState.FIRING)
    alert_acknowledge(alert_id=alert.pk, actor=Actor(name="oncall", source="admin"))

    clock.shift(dt.timedelta(minutes=6))   # the failures leave the 5-minute window: resolved
    evaluator_tick()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    breaker_reset(scope="worker", key="w-canary")
    canary_fails(scenario.canary, code="blocked", count=FAILURES)
    evaluator_tick()
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING and alert.acknowledged_at is None and alert.acknowledged_by == ""
