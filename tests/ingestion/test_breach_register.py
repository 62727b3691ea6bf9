"""The breach register's 72-hour clock: alerts at 48 h and 72 h after discovery, none once notified."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert, AlertState, RuleKind
from alerts.services import evaluator_tick, receiver_set
from core.audit import Actor
from core.models import StaffAction
from ingestion.breach import breach_notification_draft, breach_notification_record, breach_open
from ingestion.models import BreachIncident

pytestmark = pytest.mark.django_db

ACTOR = Actor.command("tests")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def breach_alerts(http_receiver, clock) -> list[dict[str, str]]:
    """Two evaluator rounds across the group wait; the labels of the firing breach alerts the hook got."""
    before = len(http_receiver.at("/hook"))
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    return [alert["labels"] for post in http_receiver.at("/hook")[before:] for alert in post.json()["alerts"]
            if alert["labels"]["alertname"] == "breach_deadline" and alert["status"] == "firing"]


def test_alerts_at_48_and_72_hours_and_none_once_the_notification_is_recorded(clock, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    discovered = timezone.now()
    run("privacy_breach", "open", "--title", "Export file left on a shared drive",
        "--description", "A lead export was copied to a shared folder", "--classes", "leads: names, phones",
        "--discovered-at", discovered.isoformat(), "--subjects", "1200")
    late = BreachIncident.objects.get()
    on_time = breach_open(title="Laptop stolen", description="Encrypted laptop", data_classes="staff accounts",
                          discovered_at=discovered, actor=ACTOR)
    # Notified within the day: this incident never alerts.
    clock.move_to(discovered + dt.timedelta(hours=20))
    breach_notification_record(incident=on_time, reference="SDAIA-1", actor=ACTOR)

    clock.move_to(discovered + dt.timedelta(hours=47, minutes=58))
    assert breach_alerts(http_receiver, clock) == []
    clock.move_to(discovered + dt.timedelta(hours=48, minutes=1))
    [at_48] = breach_alerts(http_receiver, clock)
    assert at_48["incident"] == str(late.pk) and at_48["stage"] == "48h" and at_48["severity"] == "critical"
    clock.move_to(discovered + dt.timedelta(hours=72, minutes=1))
    [at_72] = breach_alerts(http_receiver, clock)
    assert at_72["incident"] == str(late.pk) and at_72["stage"] == "72h"

    # Late, and the draft says so: it asks for the reasons.
    draft = run("privacy_breach", "draft", str(late.pk))
    assert "Reasons for notifying after 72 hours" in draft and "about 1,200" in draft

    run("privacy_breach", "notified", str(late.pk), "--reference", "SDAIA-2")
    clock.shift(3600)
    assert breach_alerts(http_receiver, clock) == []
    assert not Alert.objects.filter(rule__kind=RuleKind.BREACH_DEADLINE, state=AlertState.FIRING).exists()
    assert set(StaffAction.objects.filter(action__startswith="privacy.breach_").values_list("action", flat=True)) \
        == {"privacy.breach_open", "privacy.breach_update"}


def test_the_notification_draft_is_filled_from_the_incident(clock):
    incident = breach_open(
        title="Webhook secret leaked", description="A receiver URL was pasted in a public chat",
        discovered_at=timezone.now(), occurred_at=timezone.now() - dt.timedelta(hours=5),
        data_classes="leads: phone numbers\nleads: names", approx_subjects=300, approx_records=450,
        consequences="unsolicited calls", actions="secret rotated; chat message deleted",
        contact="dpo@example.com", actor=ACTOR)
    draft = breach_notification_draft(incident=incident)
    for expected in ("Webhook secret leaked", "A receiver URL was pasted", "   - leads: phone numbers",
                     "   - leads: names", "about 300", "about 450", "unsolicited calls", "secret rotated",
                     "dpo@example.com", "People affected notified: not yet",
                     f"{timezone.localtime(incident.discovered_at + dt.timedelta(hours=72)):%Y-%m-%d %H:%M}"):
        assert expected in draft, expected
    assert "after 72 hours" not in draft  # still within the 72 hours


def test_staff_open_a_breach_in_admin_and_see_the_deadline_and_the_draft(admin_client, clock):
    now = timezone.localtime()
    response = admin_client.post("/admin/ingestion/breachincident/add/", {
        "title": "Lost backup disk", "description": "An unencrypted backup disk is missing",
        "discovered_at_0": now.date().isoformat(), "discovered_at_1": now.strftime("%H:%M:%S"),
        "data_classes": "leads: everything", "approx_subjects": "5000"})
    assert response.status_code == 302
    incident = BreachIncident.objects.get()
    page = admin_client.get(f"/admin/ingestion/breachincident/{incident.pk}/change/").content.decode()
    assert "DRAFT - personal data breach notification" in page and "about 5,000" in page
    assert StaffAction.objects.filter(action="privacy.breach_open").count() == 1
