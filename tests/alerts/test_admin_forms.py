"""Every alerting admin form refuses bad input with a message on the form, never a 500: staff post bad
values and see the form again with the error, and nothing is saved (docs/RUNBOOK.md, "In admin")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import AlertRule, Receiver, Route, Silence
from alerts.services import receiver_set
from core.models import StaffAction


@pytest.fixture
def staff(db) -> Client:
    """A staff member (not a superuser) who may add and change receivers, silences, routes and rules."""
    user = get_user_model().objects.create_user("oncall", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="alerts",
        codename__in=["add_receiver", "change_receiver", "view_receiver", "add_silence", "view_silence",
                      "add_route", "change_route", "view_route", "change_alertrule", "view_alertrule"]))
    client = Client()
    client.force_login(user)
    return client


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code  # the form again, not a redirect or a 500
    form = response.context["adminform"].form
    return {name: [str(e) for e in errors] for name, errors in form.errors.items()}


RECEIVER = {"name": "r", "kind": "webhook", "url": "", "secret": "", "addresses": "", "enabled": "on"}


@pytest.mark.parametrize("changes, field, message", [
    # A retired Office 365 connector: the service refused it in save_model, a 500.
    ({"kind": "teams", "url": "https://contoso.webhook.office.com/webhookb2/abc"}, "url", "retired Office 365"),
    ({"kind": "email", "addresses": "nobody"}, "addresses", "addresses, comma-separated"),
    ({"kind": "webhook", "url": "ftp://example.com/h"}, "url", "http(s) URL"),
    ({"kind": "slack"}, "url", "needs its URL"),
    ({"kind": "pager", "url": "https://example.com/h"}, "kind", "valid choice"),
])
def test_the_receiver_form_shows_bad_input_as_an_error(staff, changes, field, message):
    errors = form_errors(staff.post(reverse("admin:alerts_receiver_add"), {**RECEIVER, **changes}))
    assert message in " ".join(errors[field])
    assert not Receiver.objects.exists() and not StaffAction.objects.exists()


def test_the_receiver_change_form_shows_bad_input_as_an_error(staff):
    receiver = receiver_set(name="teams", kind="teams", url="https://prod-00.example.logic.azure.com/workflows/1")
    errors = form_errors(staff.post(reverse("admin:alerts_receiver_change", args=[receiver.pk]), {
        **RECEIVER, "kind": "teams", "url": "https://outlook.office.com/webhook/abc"}))
    assert "retired Office 365" in " ".join(errors["url"])
    receiver.refresh_from_db()
    assert receiver.url_hint == "https://prod-00.example.logic.azure.com/…"


def _at(moment: dt.datetime, name: str) -> dict[str, str]:
    local = timezone.localtime(moment)
    return {f"{name}_0": local.strftime("%Y-%m-%d"), f"{name}_1": local.strftime("%H:%M:%S")}


def silence_form(**changes: object) -> dict[str, object]:
    now = timezone.now()
    return {"matchers_text": "provider=maps", **_at(now, "starts_at"), **_at(now + dt.timedelta(days=7), "ends_at"),
            "comment": "nightly re-index", "hour_start": "", "hour_end": "", **changes}


@pytest.mark.parametrize("changes, field, message", [
    ({"matchers_text": "worker=~("}, "matchers_text", "bad regular expression"),
    ({"matchers_text": "just words"}, "matchers_text", "not a matcher"),
    ({"matchers_text": ""}, "matchers_text", "required"),
    ({"comment": "   "}, "comment", "required"),
    ({"weekdays": ["1"], "hour_start": "6", "hour_end": "6"}, "hour_end", "must differ from its start hour"),
    ({"weekdays": ["1"], "hour_start": "24", "hour_end": "6"}, "hour_start", "0 to 23"),
    ({"weekdays": ["1"], "hour_start": "22", "hour_end": "30"}, "hour_end", "0 to 24"),
    ({"hour_start": "22", "hour_end": "6"}, "weekdays", "needs its weekdays"),
    ({"weekdays": ["9"]}, "weekdays", "valid choice"),
    ({"hour_start": "-1"}, "hour_start", "greater than or equal to 0"),
])
def test_the_silence_form_shows_bad_input_as_an_error(staff, changes, field, message):
    errors = form_errors(staff.post(reverse("admin:alerts_silence_add"), silence_form(**changes)))
    assert message in " ".join(errors[field])
    assert not Silence.objects.exists() and not StaffAction.objects.exists()


def test_the_silence_form_refuses_an_end_before_the_start(staff):
    now = timezone.now()
    errors = form_errors(staff.post(reverse("admin:alerts_silence_add"),
                                    silence_form(**_at(now - dt.timedelta(hours=1), "ends_at"))))
    assert "must end after it starts" in " ".join(errors["ends_at"])


def test_the_silence_form_takes_a_window_across_midnight(staff):
    response = staff.post(reverse("admin:alerts_silence_add"),
                          silence_form(weekdays=["3"], hour_start="22", hour_end="6"))
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert (silence.weekdays, silence.hour_start, silence.hour_end) == ([3], 22, 6)
    page = staff.get(reverse("admin:alerts_silence_change", args=[silence.pk])).content.decode()
    assert "Thu 22:00-06:00 (into the next day)" in page


@pytest.mark.parametrize("changes, field, message", [
    ({"matchers_text": "worker=~("}, "matchers_text", "bad regular expression"),
    ({"matchers_text": "9x=y"}, "matchers_text", "not a matcher"),
    ({"group_wait_s": "-5"}, "group_wait_s", "greater than or equal to 0"),
    ({"receiver": "999999"}, "receiver", "valid choice"),
    ({"name": ""}, "name", "required"),
])
def test_the_route_form_shows_bad_input_as_an_error(staff, changes, field, message):
    receiver = receiver_set(name="hook", kind="webhook", url="http://127.0.0.1:9/hook")
    form = {"position": "0", "name": "maps team", "matchers_text": "provider=maps", "receiver": receiver.pk,
            "group_by_text": "", "group_wait_s": "", "group_interval_s": "", "repeat_interval_s": "", **changes}
    errors = form_errors(staff.post(reverse("admin:alerts_route_add"), form))
    assert message in " ".join(errors[field])
    assert not Route.objects.exists()


def test_a_route_may_not_sit_under_itself(staff):
    receiver = receiver_set(name="hook", kind="webhook", url="http://127.0.0.1:9/hook")
    route = Route.objects.create(name="all", receiver=receiver)
    errors = form_errors(staff.post(reverse("admin:alerts_route_change", args=[route.pk]), {
        "parent": route.pk, "position": "0", "name": "all", "matchers_text": "", "receiver": receiver.pk,
        "group_by_text": "", "group_wait_s": "", "group_interval_s": "", "repeat_interval_s": ""}))
    assert "cannot sit under itself" in " ".join(errors["parent"])


@pytest.mark.parametrize("changes, field, message", [
    ({"threshold": "-1"}, "threshold", "Zero or more"),
    ({"labels": '{"alertname": "x"}'}, "labels", "set by the rule itself"),
    ({"labels": "[1, 2]"}, "labels", "JSON object"),
    ({"severity": "apocalyptic"}, "severity", "valid choice"),
])
def test_the_rule_form_shows_bad_input_as_an_error(staff, changes, field, message):
    rule = AlertRule.objects.get(kind="dlq_growth")
    form = {"enabled": "on", "threshold": "5", "for_seconds": "0", "severity": "warning", "labels": "{}", **changes}
    errors = form_errors(staff.post(reverse("admin:alerts_alertrule_change", args=[rule.pk]), form))
    assert message in " ".join(errors[field])
    rule.refresh_from_db()
    assert rule.threshold != -1 and "alertname" not in rule.labels


def test_the_rule_list_editing_shows_bad_input_as_an_error(staff):
    rules = list(AlertRule.objects.order_by("kind"))  # the changelist's own order does not matter here
    form = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "_save": "Save",
            "form-0-id": rules[0].pk, "form-0-enabled": "on", "form-0-threshold": "-3",
            "form-0-for_seconds": "0", "form-0-severity": "warning"}
    response = staff.post(reverse("admin:alerts_alertrule_changelist"), form)
    assert response.status_code == 200
    assert "Zero or more" in response.content.decode()
    rules[0].refresh_from_db()
    assert rules[0].threshold >= 0
