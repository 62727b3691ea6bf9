"""System checks of the project's settings: services, processes, keys, limits (docs/DEPLOY.md,
"Settings checks"). The apps check their own settings in their own `checks.py`.

How many app processes there are: `WEB_CONCURRENCY`, the number of app (daphne) processes of the
whole deployment, when the environment says so; otherwise the documented layout, one daphne per CPU
core of this machine (docs/DEPLOY.md, "daphne").
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks

from core.setting_checks import below_minimum, email_backend_sends, settings_check
from leadops.devkeys import REQUIRED_KEYS, dev_keys_read

# The token a Prometheus server sends: shorter than this is guessable (docs/DEPLOY.md asks for 32 random
# bytes, which is 43 characters of urlsafe base64).
METRICS_TOKEN_MIN_LENGTH = 32


def app_processes() -> int:
    """The number of app processes the deployment runs: WEB_CONCURRENCY, or one per CPU core."""
    declared = settings.WEB_CONCURRENCY
    return int(declared) if declared is not None else os.cpu_count() or 1


@settings_check("leadops.E001", checks.Error, hint=(
    "Keep 0 <= LEADOPS_DB_POOL_MIN <= LEADOPS_DB_POOL_MAX and LEADOPS_DB_POOL_MAX >= 1 "
    "(docs/DEPLOY.md, 'PostgreSQL', sizes them)."))
def check_pool(**kwargs: Any) -> str | None:
    """A connection pool whose bounds contradict each other never opens."""
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if not isinstance(pool, dict):
        return None
    low, high = pool.get("min_size", 0), pool.get("max_size", 1)
    if 0 <= low <= high and high >= 1:
        return None
    return (f"The database pool's bounds are LEADOPS_DB_POOL_MIN={low}, LEADOPS_DB_POOL_MAX={high}; no "
            "process could open a connection.")


def check_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """leadops.E002: limits of the project package that would refuse every request."""
    minimums = {"LEADOPS_MAX_BODY_BYTES": 1024}
    if settings.WEB_CONCURRENCY is not None:
        minimums["WEB_CONCURRENCY"] = 1
    return below_minimum(minimums=minimums, check_id="leadops.E002",
                         hint="docs/DEPLOY.md says what it bounds.")


@settings_check("leadops.E004", checks.Error, hint=(
    "Set SECURE_PROXY_SSL_HEADER to e.g. HTTP_X_FORWARDED_PROTO,https, or to an empty value when "
    "daphne terminates TLS itself (docs/DEPLOY.md, 'Security settings')."))
def check_proxy_ssl_header(**kwargs: Any) -> str | None:
    """A proxy header Django cannot read fails every request (500) in production."""
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if header is None or (isinstance(header, tuple | list) and len(header) == 2 and all(header)):
        return None
    return (f"SECURE_PROXY_SSL_HEADER is {','.join(map(str, header))!r}; it must be a header name and a "
            "value, so every request would fail.")


@settings_check("leadops.W004", checks.Warning, hint=(
    "Keep LEADOPS_MONITOR_EVENTS_KEEP at 1000 or more (docs/DEPLOY.md, 'Live monitoring and metrics')."))
def check_monitor_events_keep(**kwargs: Any) -> str | None:
    """Too short a replay log loses events of viewers that reconnect."""
    keep = settings.LEADOPS_MONITOR_EVENTS_KEEP
    if isinstance(keep, int) and keep >= 1000:
        return None
    return (f"LEADOPS_MONITOR_EVENTS_KEEP is {keep!r}: a monitor page that reconnects misses the events it "
            "was away for.")


@settings_check("leadops.W001", checks.Warning, hint=(
    "Set REDIS_URL (docs/DEPLOY.md, 'Redis'), or WEB_CONCURRENCY=1 if only one app process runs."))
def check_redis_for_several_processes(**kwargs: Any) -> str | None:
    """(deploy) Several app processes without Redis do not share cache or live stream."""
    processes = app_processes()
    if settings.REDIS_URL or processes <= 1:
        return None
    return (f"REDIS_URL is not set while {processes} app processes are expected (WEB_CONCURRENCY, else one "
            "per CPU core): each process keeps its own cache and Channels layer, so the live monitor reaches "
            "only viewers of the process that published, and nonces and rate limits load the database.")


@settings_check("leadops.W006", checks.Warning, hint=(
    "Point DATABASE_URL at PostgreSQL (docs/DEPLOY.md, 'From SQLite to PostgreSQL'), or set "
    "WEB_CONCURRENCY=1."))
def check_sqlite_for_several_processes(**kwargs: Any) -> str | None:
    """(deploy) SQLite's one writer serializes several app processes."""
    processes = app_processes()
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" or processes <= 1:
        return None
    return (f"The database is SQLite while {processes} app processes are expected (WEB_CONCURRENCY, else one "
            "per CPU core): its one writer makes every report, claim and heartbeat wait in line.")


@settings_check("leadops.W002", checks.Warning, hint=(
    "Set EMAIL_URL to the mail relay, e.g. smtp+tls://user:password@smtp.example.com:587 "
    "(docs/DEPLOY.md, 'Database and services')."))
def check_email_backend_sends(**kwargs: Any) -> str | None:
    """(deploy) In production, mail (alerts, password resets) must leave the machine."""
    if email_backend_sends():
        return None
    return (f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}, which sends nothing: email alerts and password "
            "resets would reach nobody.")


@settings_check("leadops.W003", checks.Warning, hint=(
    "Set ALLOWED_HOSTS to the real host names, comma-separated (docs/DEPLOY.md, 'Required in "
    "production')."))
def check_allowed_hosts(**kwargs: Any) -> str | None:
    """(deploy) '*' answers any Host header (Django's security.W020 covers an empty list)."""
    if "*" not in settings.ALLOWED_HOSTS:
        return None
    return ("ALLOWED_HOSTS contains '*': the portal answers any Host header, so links it builds (password "
            "resets, the admin's absolute URLs) can point at a host an attacker chose.")


@settings_check("leadops.E003", checks.Error, hint=(
    "Generate production keys, put them in the environment (docs/DEPLOY.md, 'Required in "
    "production') and delete .dev-keys.env on this machine."))
def check_no_development_keys(**kwargs: Any) -> str | None:
    """(deploy) The keys generated for development must never serve production."""
    dev = dev_keys_read(settings.BASE_DIR / ".dev-keys.env")
    reused = [name for name in REQUIRED_KEYS if dev.get(name) and getattr(settings, name, None) == dev[name]]
    if not reused:
        return None
    verb = "is" if len(reused) == 1 else "are"
    return f"{', '.join(reused)} {verb} the development key(s) of .dev-keys.env."


@settings_check("leadops.W005", checks.Warning, hint=(
    "Generate one with `python -c \"import secrets; print(secrets.token_urlsafe(32))\"` "
    "(docs/DEPLOY.md, 'Live monitoring and metrics')."))
def check_metrics_token(**kwargs: Any) -> str | None:
    """(deploy) A short /metrics bearer token can be guessed."""
    token = settings.LEADOPS_METRICS_TOKEN
    if not token or len(token) >= METRICS_TOKEN_MIN_LENGTH:
        return None
    return f"LEADOPS_METRICS_TOKEN has {len(token)} characters; a token that short can be guessed."


def check_storage_backend(**kwargs: Any) -> list[checks.CheckMessage]:
    """leadops.E005: LEADOPS_STORAGE_URL names a bucket whose client library is not installed."""
    backend = settings.STORAGES.get("default", {}).get("BACKEND", "")
    if not backend.startswith("storages."):
        return []
    try:
        import_module(backend.rsplit(".", 1)[0])
    except ImportError as exc:
        return [checks.Error(
            f"LEADOPS_STORAGE_URL names an S3 bucket, but its client cannot be imported ({exc.name}): no "
            "artifact or screenshot could be stored or read.",
            hint="Install the pinned requirements (make install: django-storages[s3] and boto3), or unset "
                 "LEADOPS_STORAGE_URL (docs/DEPLOY.md, 'Files with several app nodes').",
            obj="settings", id="leadops.E005")]
    return []


def register() -> None:
    """Register the project's checks (LeadopsConfig.ready)."""
    for check in (check_pool, check_limits, check_proxy_ssl_header, check_monitor_events_keep,
                  check_storage_backend):
        checks.register(check, "settings")
    for check in (check_redis_for_several_processes, check_sqlite_for_several_processes,
                  check_email_backend_sends, check_allowed_hosts, check_no_development_keys,
                  check_metrics_token):
        checks.register(check, checks.Tags.security, deploy=True)
