"""suppression_remove --phone P: take a number off the suppression list (audited)."""

from __future__ import annotations

from typing import Any

from core.audit import Actor
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import phone_mask, subject_from_phone, suppression_remove


class Command(PhoneCommand):
    help = "Take a phone number off the suppression list (its leads may be stored again)."

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        subject = subject_from_phone(phone=phone)
        removed = suppression_remove(phone=phone, actor=actor)
        masked = phone_mask(e164=subject.e164)
        return f"removed {masked}" if removed else f"{masked} was not on the suppression list"
