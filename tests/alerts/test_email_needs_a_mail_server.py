"""An email alert is never lost in silence: in production an email receiver without a mail server is
refused, and a message that only went to a console is never recorded as delivered (docs/RUNBOOK.md,
"Setting up")."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from alerts.models import DeliveryAttempt, Notification, NotificationStatus, Receiver
from alerts.services import AlertsError, evaluator_tick, receiver_set
from tests.alerts.factories import silent_workers
from tests.leadops.test_settings import production_keys, run_manage

CONSOLE = "django.core.mail.backends.console.EmailBackend"


@pytest.fixture
def production(settings):
    """The project's production settings without EMAIL_URL (its default, `consolemail://`)."""
    settings.LEADOPS_DEVELOPMENT = False
    settings.EMAIL_BACKEND = CONSOLE
    return settings


def test_production_without_email_url_has_the_console_backend():
    # What the `production` fixture sets is what a real production start gets.
    env = {"DEBUG": "False", **production_keys()}
    result = run_manage("shell", "--no-imports", "-c", "from django.conf import settings; "
                        "print(settings.EMAIL_BACKEND, settings.LEADOPS_DEVELOPMENT)", env=env, unset=("EMAIL_URL",))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [CONSOLE, "False"]


def test_the_command_refuses_an_email_receiver_in_production(db, production):
    with pytest.raises(CommandError, match=r"email needs a mail server: EMAIL_BACKEND is .*console"):
        call_command("alert_receiver_set", "ops-mail", "--email", "ops@example.com")
    assert not Receiver.objects.exists()


def test_the_admin_refuses_an_email_receiver_in_production(admin_client, db, production):
    response = admin_client.post(reverse("admin:alerts_receiver_add"), {
        "name": "ops-mail", "kind": "email", "addresses": "ops@example.com", "url": "", "secret": "",
        "enabled": "on"})
    assert response.status_code == 200
    assert "Email needs a mail server" in response.context["adminform"].form.errors["kind"][0]
    assert not Receiver.objects.exists()


def test_a_disabled_email_receiver_is_allowed_in_production(db, production):
    receiver = receiver_set(name="ops-mail", kind="email", addresses="ops@example.com", enabled=False)
    assert not receiver.enabled
    with pytest.raises(AlertsError, match="mail server"):  # switching it on is setting it up
        receiver_set(name="ops-mail", kind="email", addresses="ops@example.com", enabled=True)


def test_alert_test_fails_in_production_and_nothing_is_recorded_as_delivered(db, settings, production, capsys):
    # A receiver made before this rule, or while a mail server was configured.
    settings.LEADOPS_DEVELOPMENT = True
    receiver_set(name="ops-mail", kind="email", addresses="ops@example.com")
    settings.LEADOPS_DEVELOPMENT = False
    with pytest.raises(CommandError, match="Not delivered to ops-mail: not sent: email needs a mail server"):
        call_command("alert_test", "ops-mail")
    assert "ops@example.com" not in capsys.readouterr().out  # not even printed
    assert Notification.objects.get().status == NotificationStatus.FAILED
    assert not DeliveryAttempt.objects.filter(ok=True).exists()


def test_the_evaluator_never_records_console_mail_as_delivered(clock, db, settings, production):
    settings.LEADOPS_DEVELOPMENT = True
    receiver_set(name="ops-mail", kind="email", addresses="ops@example.com")
    settings.LEADOPS_DEVELOPMENT = False
    silent_workers(1, silent_for_s=61)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    notification = Notification.objects.get()
    assert notification.status != NotificationStatus.DELIVERED and notification.delivered_at is None
    [attempt] = DeliveryAttempt.objects.all()
    assert not attempt.ok and "mail server" in attempt.error


def test_in_development_console_mail_is_printed_but_not_delivered(db, settings, capsys):
    settings.EMAIL_BACKEND = CONSOLE
    receiver_set(name="ops-mail", kind="email", addresses="ops@example.com")
    with pytest.raises(CommandError, match=r"not delivered: EMAIL_BACKEND is .*console"):
        call_command("alert_test", "ops-mail")
    assert "To: ops@example.com" in capsys.readouterr().out  # a developer can still read it
    assert not DeliveryAttempt.objects.get().ok


def test_with_a_mail_server_production_sets_up_and_delivers_email(db, production, smtp_receiver):
    call_command("alert_receiver_set", "ops-mail", "--email", "ops@example.com")
    call_command("alert_test", "ops-mail")
    [sent] = smtp_receiver.wait_for(1)
    assert sent.recipients == ["ops@example.com"] and DeliveryAttempt.objects.get().ok
    assert mail.outbox == []
