"""suppression_add --phone P --reason R: put a number on the suppression list (hashed; audited)."""

from __future__ import annotations

from typing import Any

from core.audit import Actor
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import suppression_add


class Command(PhoneCommand):
    help = "Put a phone number on the suppression list: reported leads with it are counted, never stored."
    reason_help = "Why (audited)."

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        entry = suppression_add(phone=phone, reason=options["reason"], actor=actor)
        return f"suppressed {entry.phone_masked}"
