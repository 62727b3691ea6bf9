"""privacy_export --phone P: print as JSON everything held on a number, in any spelling (audited)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import Actor
from ingestion.privacy import PhoneNotUsable, privacy_export


class Command(BaseCommand):
    help = "Print everything held on a phone number as JSON (a data-subject access request)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="The number, in any spelling.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = privacy_export(phone=options["phone"], actor=Actor.command("privacy_export"))
        except PhoneNotUsable as exc:
            raise CommandError(f"--phone: {exc}") from None
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))
