"""System checks of the lead settings (docs/DEPLOY.md, "Settings checks")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from core.setting_checks import below_minimum, settings_check
from ingestion.services import DEDUP_SCOPES


@settings_check("ingestion.E001", checks.Error, hint=(
    f"Set LEADOPS_DEDUP_SCOPE to one of {', '.join(DEDUP_SCOPES)} (docs/DEPLOY.md, 'Behaviour')."))
def check_dedup_scope(**kwargs: Any) -> str | None:
    """A dedup scope the ingestion does not know fails every report with leads."""
    scope = settings.LEADOPS_DEDUP_SCOPE
    if scope in DEDUP_SCOPES:
        return None
    return f"LEADOPS_DEDUP_SCOPE is {scope!r}; every report with leads would fail until it is fixed."


@settings_check("ingestion.E002", checks.Error, hint=(
    "Restore the deployment's key from the secret store (a new key makes every phone seen before "
    "new again; docs/DEPLOY.md, 'Required in production')."))
def check_fingerprint_key(**kwargs: Any) -> str | None:
    """Lead fingerprints (dedup, the suppression list) need a secret key."""
    if str(settings.LEADOPS_FINGERPRINT_KEY).strip():
        return None
    return ("LEADOPS_FINGERPRINT_KEY is empty; no lead could be fingerprinted, so every report with leads "
            "fails.")


def check_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """ingestion.E003: report limits that would refuse every report."""
    return below_minimum(minimums={"LEADOPS_MAX_LEADS_PER_REPORT": 1}, check_id="ingestion.E003",
                         hint="It is the most leads one report may carry (docs/DEPLOY.md, 'Behaviour').")


def register() -> None:
    """Register the checks of this app's settings (IngestionConfig.ready)."""
    for check in (check_dedup_scope, check_fingerprint_key, check_limits):
        checks.register(check, "settings")
