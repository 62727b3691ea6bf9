"""privacy_erase --phone P --reason R [--no-suppress]: erase a number's leads and fingerprints (audited)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from core.audit import Actor
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import privacy_erase


class Command(PhoneCommand):
    help = ("Delete a phone number's leads and fingerprints on every day and put it on the suppression "
            "list (a data-subject erasure request).")
    reason_help = "Why (the request's reference); audited."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--no-suppress", action="store_true",
                            help="Do not put the number on the suppression list.")

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        result = privacy_erase(phone=phone, reason=options["reason"], actor=actor,
                               suppress=not options["no_suppress"])
        # The contract's three keys (docs/RUNBOOK.md); the redacted mentions are counted in the audit row.
        return json.dumps({key: result[key] for key in ("erased_leads", "erased_fingerprints", "suppressed")})
