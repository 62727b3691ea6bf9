"""System checks of the job queue's settings (docs/DEPLOY.md, "Settings checks")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from core.setting_checks import below_minimum, settings_check


def check_limits(**kwargs: Any) -> list[checks.CheckMessage]:
    """queueing.E001: limits and windows that would refuse every request or drop answers too soon."""
    return below_minimum(
        minimums={
            "LEADOPS_MAX_EXCHANGE_REPORTS": 1, "LEADOPS_MAX_LEADS_PER_EXCHANGE": 1,
            "LEADOPS_MAX_EVIDENCE_BYTES": 1, "LEADOPS_IDEMPOTENCY_TTL_H": 1, "LEADOPS_JOB_RETENTION_DAYS": 0,
            "LEADOPS_REAP_ON_PULL_S": 0,
        },
        check_id="queueing.E001",
        hint="docs/DEPLOY.md, 'Behaviour' and 'Protocol v1.1 exchange', say what it bounds.")


@settings_check("queueing.W001", checks.Warning, hint=(
    "Raise LEADOPS_MAX_LEADS_PER_EXCHANGE to at least LEADOPS_MAX_LEADS_PER_REPORT "
    "(docs/DEPLOY.md, 'Protocol v1.1 exchange')."))
def check_exchange_fits_a_report(**kwargs: Any) -> str | None:
    """An exchange that cannot carry one full report refuses what v1 accepts."""
    per_exchange, per_report = settings.LEADOPS_MAX_LEADS_PER_EXCHANGE, settings.LEADOPS_MAX_LEADS_PER_REPORT
    if not isinstance(per_exchange, int) or not isinstance(per_report, int) or per_exchange >= per_report:
        return None
    return (f"LEADOPS_MAX_LEADS_PER_EXCHANGE ({per_exchange}) is below LEADOPS_MAX_LEADS_PER_REPORT "
            f"({per_report}): a full report that v1 accepts is refused (422) inside an exchange.")


def register() -> None:
    """Register the checks of this app's settings (QueueingConfig.ready)."""
    for check in (check_limits, check_exchange_fits_a_report):
        checks.register(check, "settings")
