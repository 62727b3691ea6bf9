"""suppression_add --phone P --reason R [--request ID]: put a number on the suppression list (hashed).

Audited; with --request the suppression is linked to the data-subject request.
"""

from __future__ import annotations

from typing import Any

from core.audit import Actor
from ingestion.dsr import request_suppress
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import suppression_add


class Command(PhoneCommand):
    help = "Put a phone number on the suppression list: reported leads with it are counted, never stored."
    reason_help = "Why (audited)."
    takes_request = True

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        if options["request_id"] is not None:
            entry = request_suppress(request_id=options["request_id"], phone=phone, reason=options["reason"],
                                     actor=actor)
        else:
            entry = suppression_add(phone=phone, reason=options["reason"], actor=actor)
        return f"suppressed {entry.phone_masked}"
