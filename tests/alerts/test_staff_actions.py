"""Staff changes of alerting (rules, receivers, silences, routes) are audited staff actions with a live event.

Through the doors staff use: the admin pages and the `alert_*` commands.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertRule, Receiver, Route, Silence
from alerts.services import receiver_set, silence_create
from core.models import StaffAction
from tests.factories import only_action

pytestmark = pytest.mark.django_db


def event_of(received: list[dict], row: StaffAction) -> dict:
    (event,) = [e["data"] for e in received if e["type"] == "staff.action" and e["data"]["staff_action_id"] == row.pk]
    return event


def test_alert_rule_set_command_is_audited_field_by_field(received, commit):
    with commit():
        call_command("alert_rule_set", "dlq_growth", "--threshold", "7", "--for-seconds", "60", stdout=io.StringIO())
    row = only_action("alert_rule.update")
    assert (row.actor_name, row.source, row.object_type, row.object_ids) == (
        "command:alert_rule_set", "command", "alerts.alertrule", "dlq_growth")
    assert row.changes["threshold"][1] == 7 and row.changes["for_seconds"][1] == 60
    assert event_of(received, row)["action"] == "alert_rule.update"
    # The same values again change nothing, so nothing is audited.
    call_command("alert_rule_set", "dlq_growth", "--threshold", "7", stdout=io.StringIO())
    assert StaffAction.objects.filter(action="alert_rule.update").count() == 1


def test_a_rule_changed_in_admin_is_audited_with_the_user(admin_client, admin_user, received, commit):
    rule = AlertRule.objects.get(kind="dlq_growth")
    with commit():
        response = admin_client.post(reverse("admin:alerts_alertrule_change", args=[rule.pk]), {
            "enabled": "on", "threshold": "9", "for_seconds": "0", "severity": "critical", "labels": "{}"})
    assert response.status_code == 302
    row = only_action("alert_rule.update")
    assert (row.actor_id, row.source) == (admin_user.pk, "admin")
    assert row.changes["severity"] == ["warning", "critical"] and row.changes["threshold"][1] == 9
    assert event_of(received, row)["actor"] == admin_user.get_username()


def test_receivers_are_audited_without_their_url_or_secret(admin_client, received, commit):
    with commit():
        call_command("alert_receiver_set", "ops", "--webhook", "https://hooks.example.com/T0/secret-path",
                     "--secret", "hush-123", stdout=io.StringIO())
    created = only_action("alert_receiver.create")
    assert created.actor_name == "command:alert_receiver_set"
    assert created.changes["url"] == ["(hidden)", "(new)"] and created.changes["secret"] == ["(hidden)", "(new)"]
    receiver = Receiver.objects.get(name="ops")
    with commit():
        response = admin_client.post(reverse("admin:alerts_receiver_change", args=[receiver.pk]), {
            "name": "ops", "kind": "webhook", "url": "", "secret": "", "addresses": "", "enabled": "on",
            "send_resolved": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    updated = only_action("alert_receiver.update")
    assert updated.source == "admin" and updated.changes == {"send_resolved": [False, True]}
    for row in StaffAction.objects.all():
        text = repr(row.changes) + repr(row.detail)
        assert "secret-path" not in text and "hush-123" not in text
    assert {e["data"]["action"] for e in received if e["type"] == "staff.action"} == {
        "alert_receiver.create", "alert_receiver.update"}


def test_silences_made_and_expired_by_staff_are_audited(admin_client, admin_user, received, commit):
    with commit():
        out = io.StringIO()
        call_command("alert_silence_add", "--match", "provider=maps", "--minutes", "30", "--comment", "upgrade",
                     stdout=out)
    made = only_action("alert_silence.create")
    assert made.object_ids == out.getvalue().strip() and made.detail["matchers"] == "provider=maps"
    silence = Silence.objects.get()
    with commit():
        admin_client.post(reverse("admin:alerts_silence_expire", args=[silence.pk]))
    expired = only_action("alert_silence.expire")
    assert (expired.actor_id, expired.object_ids) == (admin_user.pk, str(silence.pk))
    assert event_of(received, expired)["object_type"] == "alerts.silence"
    # Expiring an ended silence changes nothing and is not audited again.
    admin_client.post(reverse("admin:alerts_silence_expire", args=[silence.pk]))
    assert StaffAction.objects.filter(action="alert_silence.expire").count() == 1


def test_routes_created_changed_and_deleted_in_admin_are_audited(admin_client, received, commit):
    receiver = receiver_set(name="hook", kind="webhook", url="http://127.0.0.1:9/hook")
    form = {"position": "0", "name": "maps team", "matchers_text": "provider=maps", "receiver": receiver.pk,
            "group_by_text": "", "group_wait_s": "", "group_interval_s": "", "repeat_interval_s": ""}
    with commit():
        assert admin_client.post(reverse("admin:alerts_route_add"), form).status_code == 302
    route = Route.objects.get()
    created = only_action("alert_route.create")
    assert created.changes["matchers"][1] == [{"name": "provider", "op": "=", "value": "maps"}]
    with commit():
        response = admin_client.post(reverse("admin:alerts_route_change", args=[route.pk]),
                                     {**form, "matchers_text": "provider=dir"})
    assert response.status_code == 302
    assert only_action("alert_route.update").changes == {"matchers": [
        [{"name": "provider", "op": "=", "value": "maps"}], [{"name": "provider", "op": "=", "value": "dir"}]]}
    with commit():
        admin_client.post(reverse("admin:alerts_route_delete", args=[route.pk]), {"post": "yes"})
    assert not Route.objects.exists()
    assert only_action("alert_route.delete").detail == {"names": ["maps team"]}
    assert [e["data"]["action"] for e in received if e["type"] == "staff.action"] == [
        "alert_route.create", "alert_route.update", "alert_route.delete"]


def test_internal_callers_without_an_actor_write_no_staff_action():
    silence_create(matchers=[{"name": "worker", "op": "=", "value": "w-1"}],
                   ends_at=timezone.now() + dt.timedelta(hours=1), created_by="system", comment="test")
    assert not StaffAction.objects.exists()
