"""System checks of the release settings (docs/DEPLOY.md, "Settings checks")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from core.setting_checks import below_minimum, settings_check
from releases_app.signing import signing_keys


@settings_check("releases_app.E001", checks.Error, hint=(
    "Set LEADOPS_SIGNING_KEY to the deployment's seed(s) (generate one with `python -c \"import "
    "base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())\"`); a new seed needs "
    "a key rotation on the workers (docs/RUNBOOK.md, 'Rotating the manifest signing key')."))
def check_signing_key(**kwargs: Any) -> str | None:
    """Channel manifests cannot be signed without a usable Ed25519 seed."""
    try:
        signing_keys()
    except ImproperlyConfigured as exc:
        return f"{exc} Channel manifests cannot be signed, so no worker can be offered an update."
    return None


def check_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """releases_app.E002: artifact limits that refuse every release; W001: a limit the other undoes."""
    messages = below_minimum(
        minimums={"LEADOPS_MAX_RELEASE_BYTES": 1, "LEADOPS_MAX_RELEASE_UNPACKED_BYTES": 1},
        check_id="releases_app.E002", hint="docs/DEPLOY.md, 'Worker releases', says what it bounds.")
    packed, unpacked = settings.LEADOPS_MAX_RELEASE_BYTES, settings.LEADOPS_MAX_RELEASE_UNPACKED_BYTES
    if not messages and unpacked < packed:
        messages.append(checks.Warning(
            f"LEADOPS_MAX_RELEASE_UNPACKED_BYTES ({unpacked}) is below LEADOPS_MAX_RELEASE_BYTES ({packed}): "
            "an artifact that is accepted can still fail its self-test for its unpacked size.",
            hint="Keep LEADOPS_MAX_RELEASE_UNPACKED_BYTES at least LEADOPS_MAX_RELEASE_BYTES "
                 "(docs/DEPLOY.md, 'Worker releases').",
            obj="settings", id="releases_app.W001"))
    return messages


def register() -> None:
    """Register the checks of this app's settings (ReleasesAppConfig.ready)."""
    for check in (check_signing_key, check_limits):
        checks.register(check, "settings")
