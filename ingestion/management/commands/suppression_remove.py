"""suppression_remove --phone P: take a number off the suppression list (audited)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import Actor
from ingestion.privacy import PhoneNotUsable, phone_mask, subject_from_phone, suppression_remove


class Command(BaseCommand):
    help = "Take a phone number off the suppression list (its leads may be stored again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="The number, in any spelling.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            subject = subject_from_phone(phone=options["phone"])
            removed = suppression_remove(phone=options["phone"], actor=Actor.command("suppression_remove"))
        except PhoneNotUsable as exc:
            raise CommandError(f"--phone: {exc}") from None
        masked = phone_mask(e164=subject.e164)
        self.stdout.write(f"removed {masked}" if removed else f"{masked} was not on the suppression list")
