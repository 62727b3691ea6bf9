"""System checks of the alert settings (docs/DEPLOY.md, "Settings checks")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from alerts.models import Receiver, ReceiverKind
from core.setting_checks import below_minimum, email_backend_sends, settings_check


def check_timers(**kwargs: Any) -> list[checks.CheckMessage]:
    """alerts.E001: timers that would make the evaluator spin or notify without pause."""
    return below_minimum(
        minimums={"LEADOPS_ALERT_GROUP_WAIT_S": 0, "LEADOPS_ALERT_GROUP_INTERVAL_S": 0.1,
                  "LEADOPS_ALERT_REPEAT_INTERVAL_S": 0.1, "LEADOPS_ALERT_EVAL_INTERVAL_S": 0.1},
        check_id="alerts.E001", hint="docs/DEPLOY.md, 'Alerts', says what each timer does.")


@settings_check("alerts.W001", checks.Warning, hint=(
    "Set EMAIL_URL to the mail relay, e.g. smtp+tls://user:password@smtp.example.com:587 "
    "(docs/DEPLOY.md, 'Alerts'), or disable those receivers."))
def check_email_receivers_can_send(*, databases: Sequence[str] | None = None, **kwargs: Any) -> str | None:
    """An enabled email receiver while the mail backend sends nothing.

    It reads the database, so it runs when a database is checked (`check --database default`,
    `migrate`); in production `leadops.W002` says the same from the settings alone.
    """
    if not databases or email_backend_sends():
        return None
    try:
        names = list(Receiver.objects.using(databases[0]).filter(kind=ReceiverKind.EMAIL, enabled=True)
                     .order_by("name").values_list("name", flat=True)[:5])
    except DatabaseError:
        return None  # Not migrated yet: there is no receiver to warn about.
    if not names:
        return None
    return (f"Email receivers are enabled ({', '.join(names)}) but EMAIL_BACKEND is "
            f"{settings.EMAIL_BACKEND}, which sends nothing: their alerts reach nobody.")


@settings_check("alerts.E002", checks.Error, hint=(
    "Set LEADOPS_PUBLIC_URL to the portal's address as staff open it, e.g. https://ops.example.com "
    "(docs/DEPLOY.md, 'Alerts')."))
def check_public_url(**kwargs: Any) -> str | None:
    """A LEADOPS_PUBLIC_URL that is no absolute http(s) URL: every link in a notification would be broken."""
    url = settings.LEADOPS_PUBLIC_URL
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment):
        return f"LEADOPS_PUBLIC_URL is {url!r}; it must be an absolute http(s) URL without query or fragment."
    return None


@settings_check("alerts.W002", checks.Warning, hint=(
    "Set LEADOPS_PUBLIC_URL to the portal's address as staff open it, e.g. https://ops.example.com "
    "(docs/DEPLOY.md, 'Alerts')."))
def check_public_url_set(**kwargs: Any) -> str | None:
    """In production, notifications need the portal's address to link to acknowledge and the evidence."""
    if settings.LEADOPS_PUBLIC_URL or settings.LEADOPS_DEVELOPMENT:
        return None
    return ("LEADOPS_PUBLIC_URL is not set: notifications carry the acknowledge, silence and evidence links "
            "as paths only, and Slack and Teams show them as text instead of buttons.")


def register() -> None:
    """Register the checks of this app's settings (AlertsConfig.ready)."""
    checks.register(check_timers, "settings")
    checks.register(check_public_url, "settings")
    checks.register(check_public_url_set, "settings")
    checks.register(check_email_receivers_can_send, checks.Tags.database)
