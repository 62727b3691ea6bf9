"""The apps' system checks of their settings (ingestion, workers_mgmt, queueing, releases_app, alerts):
each names its mistake with an id and a hint, and passes the defaults (docs/DEPLOY.md, "Settings checks").
"""

from __future__ import annotations

import base64

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from alerts import checks as alerts_checks
from alerts.services import receiver_set
from ingestion import checks as ingestion_checks
from queueing import checks as queueing_checks
from releases_app import checks as releases_checks
from workers_mgmt import checks as workers_checks


def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_the_defaults_pass_every_settings_check():
    assert run_checks(tags=["settings"]) == []


def test_an_unknown_dedup_scope_is_an_error(settings):
    settings.LEADOPS_DEDUP_SCOPE = "week"
    assert ids(ingestion_checks.check_dedup_scope()) == ["ingestion.E001"]
    settings.LEADOPS_DEDUP_SCOPE = "all"
    assert ingestion_checks.check_dedup_scope() == []


def test_an_empty_fingerprint_key_is_an_error(settings):
    settings.LEADOPS_FINGERPRINT_KEY = "  "
    assert ids(ingestion_checks.check_fingerprint_key()) == ["ingestion.E002"]


def test_a_report_limit_below_one_is_an_error(settings):
    settings.LEADOPS_MAX_LEADS_PER_REPORT = 0
    assert ids(ingestion_checks.check_limits()) == ["ingestion.E003"]


@pytest.mark.parametrize("value", ["", " , ", "not-a-fernet-key"])
def test_a_missing_or_broken_secrets_key_is_an_error_that_does_not_print_it(settings, value):
    settings.LEADOPS_SECRETS_KEY = value
    messages = workers_checks.check_secrets_key()
    assert ids(messages) == ["workers_mgmt.E001"]
    assert "not-a-fernet-key" not in messages[0].msg + messages[0].hint


def test_a_rotation_list_with_one_broken_key_names_that_key(settings):
    good = base64.urlsafe_b64encode(b"k" * 32).decode()
    settings.LEADOPS_SECRETS_KEY = f"{good},broken"
    messages = workers_checks.check_secrets_key()
    assert ids(messages) == ["workers_mgmt.E001"] and "Key 2" in messages[0].msg
    settings.LEADOPS_SECRETS_KEY = f"{good}, {good}"
    assert workers_checks.check_secrets_key() == []


def test_a_nonce_forgotten_before_its_timestamp_expires_is_an_error(settings):
    settings.LEADOPS_CLOCK_SKEW_S, settings.LEADOPS_NONCE_TTL_S = 300, 599
    assert ids(workers_checks.check_replay_window()) == ["workers_mgmt.E002"]
    settings.LEADOPS_NONCE_TTL_S = 600
    assert workers_checks.check_replay_window() == []


@pytest.mark.parametrize("name", ["LEADOPS_CLOCK_SKEW_S", "LEADOPS_AUTH_FAILURES_IP_BURST",
                                  "LEADOPS_HEARTBEAT_OVERDUE_S", "LEADOPS_ENROLLMENT_TTL_HOURS"])
def test_a_fleet_window_or_budget_of_zero_is_an_error(settings, name):
    setattr(settings, name, 0)
    messages = workers_checks.check_limits()
    assert ids(messages) == ["workers_mgmt.E003"] and name in messages[0].msg


@pytest.mark.parametrize("name", ["LEADOPS_MAX_EXCHANGE_REPORTS", "LEADOPS_IDEMPOTENCY_TTL_H"])
def test_a_queue_limit_of_zero_is_an_error(settings, name):
    setattr(settings, name, 0)
    assert ids(queueing_checks.check_limits()) == ["queueing.E001"]


def test_a_negative_retention_is_an_error(settings):
    settings.LEADOPS_JOB_RETENTION_DAYS = -1
    assert ids(queueing_checks.check_limits()) == ["queueing.E001"]


def test_an_exchange_smaller_than_one_report_is_a_warning(settings):
    settings.LEADOPS_MAX_LEADS_PER_REPORT, settings.LEADOPS_MAX_LEADS_PER_EXCHANGE = 1000, 999
    assert ids(queueing_checks.check_exchange_fits_a_report()) == ["queueing.W001"]


@pytest.mark.parametrize("value", ["", "too-short", base64.b64encode(b"x" * 31).decode()])
def test_a_missing_or_broken_signing_key_is_an_error(settings, value):
    settings.LEADOPS_SIGNING_KEY = value
    messages = releases_checks.check_signing_key()
    assert ids(messages) == ["releases_app.E001"] and "too-short" not in messages[0].msg


def test_a_release_limit_of_zero_is_an_error_and_unpacked_below_packed_a_warning(settings):
    settings.LEADOPS_MAX_RELEASE_BYTES = 0
    assert ids(releases_checks.check_limits()) == ["releases_app.E002"]
    settings.LEADOPS_MAX_RELEASE_BYTES, settings.LEADOPS_MAX_RELEASE_UNPACKED_BYTES = 2000, 1000
    assert ids(releases_checks.check_limits()) == ["releases_app.W001"]


def test_an_alert_timer_of_zero_is_an_error(settings):
    settings.LEADOPS_ALERT_EVAL_INTERVAL_S = 0
    assert ids(alerts_checks.check_timers()) == ["alerts.E001"]


@pytest.mark.django_db
def test_an_enabled_email_receiver_with_a_backend_that_sends_nothing_is_a_warning(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    assert alerts_checks.check_email_receivers_can_send(databases=["default"]) == []
    receiver_set(name="ops mail", kind="email", addresses="ops@example.com")
    messages = alerts_checks.check_email_receivers_can_send(databases=["default"])
    assert ids(messages) == ["alerts.W001"] and "ops mail" in messages[0].msg
    # Without a database to check (plain `check`), it reads nothing.
    assert alerts_checks.check_email_receivers_can_send(databases=None) == []
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert alerts_checks.check_email_receivers_can_send(databases=["default"]) == []


def test_an_error_stops_manage_py_commands(settings):
    settings.LEADOPS_DEDUP_SCOPE = "week"
    with pytest.raises(SystemCheckError, match=r"ingestion\.E001"):
        call_command("check")
