"""`manage.py check --deploy` is clean with production settings, and each security setting is on."""

from __future__ import annotations

from tests.leadops.test_settings import production_keys, run_manage

# The documented production layout (docs/DEPLOY.md): PostgreSQL, Redis, a mail relay, two daphne
# processes. `check --deploy` connects to none of them.
PRODUCTION = {"DEBUG": "False", "ALLOWED_HOSTS": "leadops.example.com",
              "CSRF_TRUSTED_ORIGINS": "https://leadops.example.com",
              "DATABASE_URL": "postgres://leadops@127.0.0.1:5432/leadops", "REDIS_URL": "redis://127.0.0.1:6379/0",
              "EMAIL_URL": "smtp+tls://leadops:password@smtp.example.com:587", "WEB_CONCURRENCY": "2",
              "LEADOPS_PUBLIC_URL": "https://leadops.example.com"}


def test_check_deploy_reports_nothing_but_the_documented_preload_choice():
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env={**PRODUCTION, **production_keys()})
    assert result.returncode == 0, result.stdout + result.stderr
    # Only security.W021 (HSTS preload off by choice, docs/DEPLOY.md "Security settings") is silenced.
    assert "System check identified no issues (1 silenced)." in result.stdout, result.stdout + result.stderr


def test_check_deploy_is_clean_with_preload_on_too():
    env = {**PRODUCTION, **production_keys(), "SECURE_HSTS_PRELOAD": "True"}
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, result.stdout


def test_production_security_settings_come_from_the_environment():
    code = ("from django.conf import settings as s; print(s.SECURE_PROXY_SSL_HEADER, s.SESSION_COOKIE_SECURE, "
            "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_CONTENT_TYPE_NOSNIFF, s.SECURE_REFERRER_POLICY)")
    env = {**PRODUCTION, **production_keys(), "DJANGO_SETTINGS_MODULE": "leadops.settings",
           "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_SCHEME,https", "SECURE_HSTS_SECONDS": "600"}
    result = run_manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "('HTTP_X_FORWARDED_SCHEME', 'https') True True 600 True same-origin")
