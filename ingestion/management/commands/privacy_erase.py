"""privacy_erase --phone P --reason R [--request ID] [--no-suppress]: erase a number's leads (audited).

Every erasure writes a receipt (`erasure_receipt ID` prints it); with --request the receipt and the
suppression are linked to the data-subject request.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandParser

from core.audit import Actor
from ingestion.dsr import request_erase
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import privacy_erase


class Command(PhoneCommand):
    help = ("Delete a phone number's leads and fingerprints on every day and put it on the suppression "
            "list (a data-subject erasure request).")
    reason_help = "Why (the request's reference); audited."
    takes_request = True

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--no-suppress", action="store_true",
                            help="Do not put the number on the suppression list.")

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        suppress = not options["no_suppress"]
        if options["request_id"] is not None:
            result = request_erase(request_id=options["request_id"], phone=phone, reason=options["reason"],
                                   actor=actor, suppress=suppress)
        else:
            result = privacy_erase(phone=phone, reason=options["reason"], actor=actor, suppress=suppress)
        # The contract's three keys (docs/RUNBOOK.md) and the receipt; mentions are counted in the audit row.
        keys = ("erased_leads", "erased_fingerprints", "suppressed", "receipt")
        return json.dumps({key: result[key] for key in keys})
