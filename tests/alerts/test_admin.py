"""Admin of alerting: every page renders, one-click silence / expire / send test, read-only logs."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, DeliveryAttempt, Receiver, Route, Silence
from alerts.services import evaluator_tick, receiver_set, silence_create
from tests.alerts.factories import silent_workers


@pytest.fixture
def firing(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook/secret-token"), secret="k")
    silent_workers(2, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    return http_receiver


def test_every_alerts_page_renders(admin_client, firing):
    alert = Alert.objects.first()
    receiver = Receiver.objects.get()
    silence = silence_create(matchers=[{"name": "worker", "op": "=", "value": "w-000"}],
                             ends_at=timezone.now() + dt.timedelta(hours=1), created_by="ops", comment="c")
    route = Route.objects.create(name="all", receiver=receiver)
    pages = [reverse(f"admin:alerts_{name}_changelist") for name in
             ("alertrule", "alert", "silence", "receiver", "route", "notification", "deliveryattempt")]
    pages += [reverse("admin:alerts_alert_change", args=[alert.pk]), reverse("admin:alerts_silence_change", args=[silence.pk]),
              reverse("admin:alerts_receiver_change", args=[receiver.pk]), reverse("admin:alerts_route_change", args=[route.pk]),
              reverse("admin:alerts_silence_add"), reverse("admin:alerts_receiver_add"), reverse("admin:alerts_route_add"),
              reverse("admin:alerts_notification_change", args=[receiver.notifications.get().pk])]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    alert_page = admin_client.get(reverse("admin:alerts_alert_change", args=[alert.pk])).content.decode()
    assert "worker=w-00" in alert_page and "firing" in alert_page and "Silence this alert" in alert_page
    receiver_page = admin_client.get(reverse("admin:alerts_receiver_change", args=[receiver.pk])).content.decode()
    assert "secret-token" not in receiver_page  # the URL is a credential: never shown again


def test_one_click_silences_exactly_that_alert(admin_client, firing):
    alert = Alert.objects.order_by("id").first()
    response = admin_client.post(reverse("admin:alerts_alert_silence", args=[alert.pk]))
    silence = Silence.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:alerts_silence_change", args=[silence.pk])
    assert sorted((m["name"], m["value"]) for m in silence.matchers) == sorted(alert.labels.items())
    assert silence.created_by == "admin" and silence.ends_at > timezone.now()
    assert admin_client.get(reverse("admin:alerts_alert_silence", args=[alert.pk])).status_code == 405


def test_expire_early_ends_the_silence(admin_client, db):
    silence = silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                             ends_at=timezone.now() + dt.timedelta(hours=3), created_by="ops", comment="work")
    admin_client.post(reverse("admin:alerts_silence_expire", args=[silence.pk]))
    silence.refresh_from_db()
    assert silence.ends_at <= timezone.now() and silence.expired_early_at is not None


def test_send_test_button_delivers_and_logs(admin_client, db, http_receiver):
    receiver = receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    response = admin_client.post(reverse("admin:alerts_receiver_test", args=[receiver.pk]), follow=True)
    assert "Delivered to slack" in response.content.decode()
    assert len(http_receiver.at("/slack")) == 1
    assert DeliveryAttempt.objects.get().ok


def test_a_receiver_added_in_admin_is_stored_encrypted(admin_client, db):
    response = admin_client.post(reverse("admin:alerts_receiver_add"), {
        "name": "team-hook", "kind": "webhook", "url": "https://hooks.example.com/abc/def", "secret": "hush",
        "addresses": "", "send_resolved": "on", "enabled": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    receiver = Receiver.objects.get(name="team-hook")
    assert receiver.url_hint == "https://hooks.example.com/…" and receiver.send_resolved
    assert "abc/def" not in receiver.url_encrypted and receiver.secret_encrypted


def test_a_silence_added_in_admin_takes_matchers_one_per_line(admin_client, db):
    now = timezone.now()
    response = admin_client.post(reverse("admin:alerts_silence_add"), {
        "matchers_text": "alertname=heartbeat_missing\nworker=~w-0.*",
        "starts_at_0": timezone.localtime(now).strftime("%Y-%m-%d"), "starts_at_1": timezone.localtime(now).strftime("%H:%M:%S"),
        "ends_at_0": timezone.localtime(now + dt.timedelta(hours=1)).strftime("%Y-%m-%d"),
        "ends_at_1": timezone.localtime(now + dt.timedelta(hours=1)).strftime("%H:%M:%S"),
        "comment": "rolling restart", "hour_start": "", "hour_end": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    silence = Silence.objects.get()
    assert silence.created_by == "admin"
    assert silence.matchers[1] == {"name": "worker", "op": "=~", "value": "w-0.*"}
    bad = admin_client.post(reverse("admin:alerts_silence_add"), {
        "matchers_text": "worker=~(", "starts_at_0": "2020-01-01", "starts_at_1": "00:00:00",
        "ends_at_0": "2020-01-01", "ends_at_1": "01:00:00", "comment": "x"})
    assert bad.status_code == 200 and "bad regular expression" in bad.content.decode()


def test_the_delivery_log_and_alerts_are_read_only(admin_client, firing):
    assert admin_client.get(reverse("admin:alerts_deliveryattempt_add")).status_code == 403
    assert admin_client.get(reverse("admin:alerts_alert_add")).status_code == 403
    attempt = DeliveryAttempt.objects.first()
    response = admin_client.post(reverse("admin:alerts_deliveryattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 403


def test_one_click_views_keep_csrf(db, admin_user, firing):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    alert = Alert.objects.first()
    assert client.post(reverse("admin:alerts_alert_silence", args=[alert.pk])).status_code == 403
    assert not Silence.objects.exists()


def test_staff_only(client, firing):
    response = client.get(reverse("admin:alerts_alert_changelist"))
    assert response.status_code == 302 and "/login/" in response.url


@pytest.mark.parametrize("data, field", [
    ({"name": "m", "kind": "email", "addresses": "nobody", "url": "", "secret": "", "enabled": "on"}, "addresses"),
    ({"name": "h", "kind": "webhook", "addresses": "", "url": "ftp://x", "secret": "", "enabled": "on"}, "url"),
    ({"name": "h", "kind": "slack", "addresses": "", "url": "", "secret": "", "enabled": "on"}, "url"),
])
def test_a_bad_receiver_form_is_an_error_on_the_page_not_a_crash(admin_client, db, data, field):
    response = admin_client.post(reverse("admin:alerts_receiver_add"), data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Receiver.objects.exists()


def test_rule_labels_may_not_replace_alertname(admin_client, db):
    from alerts.models import AlertRule

    rule = AlertRule.objects.get(kind="dlq_growth")
    response = admin_client.post(reverse("admin:alerts_alertrule_change", args=[rule.pk]), {
        "enabled": "on", "threshold": "5", "for_seconds": "0", "severity": "warning",
        "labels": '{"alertname": "x"}'})
    assert response.status_code == 200 and "set by the rule itself" in response.content.decode()
    response = admin_client.post(reverse("admin:alerts_alertrule_change", args=[rule.pk]), {
        "enabled": "on", "threshold": "5", "for_seconds": "30", "severity": "critical", "labels": '{"team": "queue"}'})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.for_seconds, rule.severity, rule.labels) == (5, 30, "critical", {"team": "queue"})
