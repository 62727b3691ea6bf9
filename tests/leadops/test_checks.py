"""The project's system checks (leadops/checks.py): each names its production mistake, and only then.

docs/DEPLOY.md, "Settings checks".
"""

from __future__ import annotations

import pytest
from django.core.checks import run_checks

from leadops import checks
from tests.leadops.test_settings import production_keys, run_manage


def ids(messages) -> list[str]:
    return [message.id for message in messages]


# The database settings are changed in place (and put back): overriding DATABASES would reconnect.
def test_pool_bounds_that_contradict_each_other_are_an_error(settings, monkeypatch):
    default = settings.DATABASES["default"]
    monkeypatch.setitem(default, "OPTIONS", {**default.get("OPTIONS", {}), "pool": {"min_size": 5, "max_size": 2}})
    assert ids(checks.check_pool()) == ["leadops.E001"]
    monkeypatch.setitem(default, "OPTIONS", {**default.get("OPTIONS", {}), "pool": {"min_size": 2, "max_size": 5}})
    assert checks.check_pool() == []


@pytest.mark.parametrize(("name", "value"), [("LEADOPS_MAX_BODY_BYTES", 0), ("WEB_CONCURRENCY", 0)])
def test_a_limit_that_refuses_everything_is_an_error(settings, name, value):
    assert checks.check_limits() == []
    setattr(settings, name, value)
    messages = checks.check_limits()
    assert ids(messages) == ["leadops.E002"] and name in messages[0].msg and messages[0].hint


def test_a_proxy_header_without_its_value_is_an_error(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO",)
    assert ids(checks.check_proxy_ssl_header()) == ["leadops.E004"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert checks.check_proxy_ssl_header() == []


def test_a_malformed_proxy_header_is_reported_by_check_not_a_traceback():
    env = {"DEBUG": "False", "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO", **production_keys()}
    result = run_manage("check", env=env)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "(leadops.E004) SECURE_PROXY_SSL_HEADER" in result.stderr


def test_a_short_replay_log_is_a_warning(settings):
    settings.LEADOPS_MONITOR_EVENTS_KEEP = 100
    assert ids(checks.check_monitor_events_keep()) == ["leadops.W004"]
    settings.LEADOPS_MONITOR_EVENTS_KEEP = 10_000
    assert checks.check_monitor_events_keep() == []


def test_several_processes_without_redis_is_a_warning(settings):
    settings.REDIS_URL, settings.WEB_CONCURRENCY = "", 2
    assert ids(checks.check_redis_for_several_processes()) == ["leadops.W001"]
    settings.WEB_CONCURRENCY = 1
    assert checks.check_redis_for_several_processes() == []
    settings.REDIS_URL, settings.WEB_CONCURRENCY = "redis://127.0.0.1:6379/0", 8
    assert checks.check_redis_for_several_processes() == []


def test_without_web_concurrency_the_process_count_is_one_per_cpu_core(settings, monkeypatch):
    settings.WEB_CONCURRENCY = None
    monkeypatch.setattr(checks.os, "cpu_count", lambda: 4)
    assert checks.app_processes() == 4
    settings.WEB_CONCURRENCY = 3
    assert checks.app_processes() == 3


def test_several_processes_on_sqlite_is_a_warning(settings, monkeypatch):
    settings.WEB_CONCURRENCY = 2
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    assert ids(checks.check_sqlite_for_several_processes()) == ["leadops.W006"]
    settings.WEB_CONCURRENCY = 1
    assert checks.check_sqlite_for_several_processes() == []
    settings.WEB_CONCURRENCY = 2
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
    assert checks.check_sqlite_for_several_processes() == []


@pytest.mark.parametrize("backend", ["console", "locmem", "dummy", "filebased"])
def test_a_mail_backend_that_sends_nothing_is_a_warning(settings, backend):
    settings.EMAIL_BACKEND = f"django.core.mail.backends.{backend}.EmailBackend"
    assert ids(checks.check_email_backend_sends()) == ["leadops.W002"]


def test_an_smtp_backend_passes(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert checks.check_email_backend_sends() == []


def test_any_host_is_a_warning(settings):
    settings.ALLOWED_HOSTS = ["leadops.example.com", "*"]
    assert ids(checks.check_allowed_hosts()) == ["leadops.W003"]
    settings.ALLOWED_HOSTS = ["leadops.example.com"]
    assert checks.check_allowed_hosts() == []


def test_development_keys_are_an_error_and_never_printed(settings, tmp_path):
    (tmp_path / ".dev-keys.env").write_text("# dev\nSECRET_KEY=dev-secret\nLEADOPS_SIGNING_KEY=dev-seed\n")
    settings.BASE_DIR = tmp_path
    settings.SECRET_KEY, settings.LEADOPS_SIGNING_KEY = "dev-secret", "a-real-seed"
    messages = checks.check_no_development_keys()
    assert ids(messages) == ["leadops.E003"]
    assert "SECRET_KEY" in messages[0].msg and "SIGNING" not in messages[0].msg
    assert "dev-secret" not in messages[0].msg + messages[0].hint
    settings.SECRET_KEY = "x" * 50
    assert checks.check_no_development_keys() == []


def test_a_short_metrics_token_is_a_warning(settings):
    settings.LEADOPS_METRICS_TOKEN = "short"
    assert ids(checks.check_metrics_token()) == ["leadops.W005"]
    settings.LEADOPS_METRICS_TOKEN = "x" * 43
    assert checks.check_metrics_token() == []
    settings.LEADOPS_METRICS_TOKEN = ""
    assert checks.check_metrics_token() == []


def test_the_deploy_checks_are_registered_and_run_only_with_deploy(settings):
    settings.REDIS_URL, settings.WEB_CONCURRENCY, settings.ALLOWED_HOSTS = "", 2, ["*"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    deploy = set(ids(run_checks(include_deployment_checks=True)))
    assert {"leadops.W001", "leadops.W002", "leadops.W003"} <= deploy
    assert not {"leadops.W001", "leadops.W002", "leadops.W003"} & set(ids(run_checks()))
