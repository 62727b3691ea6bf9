"""System checks of the fleet's settings: worker secrets, signatures, failed-authentication budgets
(docs/DEPLOY.md, "Settings checks")."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core import checks

from core.setting_checks import below_minimum


def check_secrets_key(**kwargs: Any) -> list[checks.CheckMessage]:
    """workers_mgmt.E001: the key that encrypts worker secrets and receiver URLs must be usable."""
    parts = [part.strip() for part in str(settings.LEADOPS_SECRETS_KEY).split(",")]
    hint = ("Set LEADOPS_SECRETS_KEY to the deployment's Fernet key(s), comma-separated, the newest first "
            "(generate one with `python -c \"from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())\"`; docs/DEPLOY.md, 'Required in production').")
    if not any(parts):
        return [checks.Error("LEADOPS_SECRETS_KEY is empty: worker secrets and receiver URLs can be neither "
                             "stored nor read.", hint=hint, obj="settings", id="workers_mgmt.E001")]
    errors: list[checks.CheckMessage] = []
    for index, part in enumerate(parts, start=1):
        try:
            Fernet(part.encode())
        except ValueError:
            # Never the value itself: it is a secret.
            errors.append(checks.Error(
                f"Key {index} of LEADOPS_SECRETS_KEY is not a Fernet key (32 bytes, url-safe base64).",
                hint=hint, obj="settings", id="workers_mgmt.E001"))
    return errors


def check_replay_window(**kwargs: Any) -> list[checks.CheckMessage]:
    """workers_mgmt.E002: a nonce must be remembered as long as its timestamp is accepted."""
    skew, ttl = settings.LEADOPS_CLOCK_SKEW_S, settings.LEADOPS_NONCE_TTL_S
    if not isinstance(skew, int | float) or not isinstance(ttl, int | float) or ttl >= 2 * skew:
        return []
    return [checks.Error(
        f"LEADOPS_NONCE_TTL_S ({ttl}) is less than twice LEADOPS_CLOCK_SKEW_S ({skew}): a signed request "
        "could be replayed after its nonce is forgotten while its timestamp is still accepted.",
        hint=f"Set LEADOPS_NONCE_TTL_S to at least {2 * skew} or lower LEADOPS_CLOCK_SKEW_S "
             "(docs/DEPLOY.md, 'Behaviour').",
        obj="settings", id="workers_mgmt.E002")]


def check_liveness_refresh(**kwargs: Any) -> list[checks.CheckMessage]:
    """workers_mgmt.E004: liveness refreshed less often than a worker counts as overdue."""
    refresh, overdue = settings.LEADOPS_LIVENESS_REFRESH_S, settings.LEADOPS_HEARTBEAT_OVERDUE_S
    if not isinstance(refresh, int | float) or not isinstance(overdue, int | float) or 2 * refresh < overdue:
        return []
    return [checks.Error(
        f"LEADOPS_LIVENESS_REFRESH_S ({refresh}) is not under half of LEADOPS_HEARTBEAT_OVERDUE_S "
        f"({overdue}): a worker that only pulls could be announced offline while it works.",
        hint="Lower LEADOPS_LIVENESS_REFRESH_S (docs/API.md, 'Liveness').", obj="settings",
        id="workers_mgmt.E004")]


def check_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """workers_mgmt.E003: windows and budgets that would refuse every worker or never expire anything."""
    return below_minimum(
        minimums={
            "LEADOPS_CLOCK_SKEW_S": 1, "LEADOPS_NONCE_TTL_S": 1, "LEADOPS_CREDENTIAL_CACHE_S": 0,
            "LEADOPS_ROTATION_GRACE_HOURS": 0, "LEADOPS_ENROLLMENT_TTL_HOURS": 0.01,
            "LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN": 1, "LEADOPS_HEARTBEAT_OVERDUE_S": 1,
            "LEADOPS_AUTH_FAILURES_IP_PER_MIN": 1, "LEADOPS_AUTH_FAILURES_IP_BURST": 1,
            "LEADOPS_AUTH_FAILURES_WORKER_PER_MIN": 1, "LEADOPS_AUTH_FAILURES_WORKER_BURST": 1,
            "LEADOPS_AUTH_FAILURE_RETENTION_DAYS": 1, "LEADOPS_ENROLL_FAILURES_IP_PER_MIN": 1,
            "LEADOPS_ENROLL_FAILURES_IP_BURST": 1, "LEADOPS_LIVENESS_REFRESH_S": 1,
            "LEADOPS_LONG_POLL_PROBE_S": 0.1, "LEADOPS_LONG_POLL_THREADS": 1,
            "LEADOPS_REDIS_MAX_CONNECTIONS": 1,
        },
        check_id="workers_mgmt.E003", hint="docs/DEPLOY.md, 'Behaviour', says what it bounds.")


def register() -> None:
    """Register the checks of this app's settings (WorkersMgmtConfig.ready)."""
    for check in (check_secrets_key, check_replay_window, check_liveness_refresh, check_limits):
        checks.register(check, "settings")
