"""privacy_erase --phone P --reason R [--no-suppress]: erase a number's leads and fingerprints (audited)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import Actor
from ingestion.privacy import PhoneNotUsable, privacy_erase


class Command(BaseCommand):
    help = ("Delete a phone number's leads and fingerprints on every day and put it on the suppression "
            "list (a data-subject erasure request).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="The number, in any spelling.")
        parser.add_argument("--reason", required=True, help="Why (the request's reference); audited.")
        parser.add_argument("--no-suppress", action="store_true",
                            help="Do not put the number on the suppression list.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["reason"].strip():
            raise CommandError("--reason: a reason is required")
        try:
            result = privacy_erase(phone=options["phone"], reason=options["reason"],
                                   actor=Actor.command("privacy_erase"), suppress=not options["no_suppress"])
        except PhoneNotUsable as exc:
            raise CommandError(f"--phone: {exc}") from None
        self.stdout.write(json.dumps(result))
