"""Fixtures of the alerting tests: a local SMTP receiver and the settings pointing at it (the HTTP one is
tests/conftest.py's `http_receiver`)."""

from __future__ import annotations

import pytest

from tests.alerts.receivers import SmtpReceiver
from tests.fixtures import settings_fixture


@pytest.fixture
def smtp_receiver(settings):
    receiver = SmtpReceiver()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = receiver.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    yield receiver
    receiver.close()


fast_timers = settings_fixture(
    "Alert timers short enough for a test to watch a whole lifecycle in seconds.",
    LEADOPS_ALERT_GROUP_WAIT_S=1.0, LEADOPS_ALERT_GROUP_INTERVAL_S=3.0,
    LEADOPS_ALERT_REPEAT_INTERVAL_S=3600.0, LEADOPS_ALERT_EVAL_INTERVAL_S=0.5,
)
