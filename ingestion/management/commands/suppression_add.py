"""suppression_add --phone P --reason R: put a number on the suppression list (hashed; audited)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import Actor
from ingestion.privacy import PhoneNotUsable, suppression_add


class Command(BaseCommand):
    help = "Put a phone number on the suppression list: reported leads with it are counted, never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="The number, in any spelling.")
        parser.add_argument("--reason", required=True, help="Why (audited).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["reason"].strip():
            raise CommandError("--reason: a reason is required")
        try:
            entry = suppression_add(phone=options["phone"], reason=options["reason"],
                                    actor=Actor.command("suppression_add"))
        except PhoneNotUsable as exc:
            raise CommandError(f"--phone: {exc}") from None
        self.stdout.write(f"suppressed {entry.phone_masked}")
