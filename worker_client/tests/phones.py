"""What the portal makes of a phone number, for judging the simulated provider's leads.

phonenumbers is a dependency of the portal, not of worker_client: only its tests and the bench
(`bench/raw_ingest.py`) use this module, and releases leave the tests out.
"""

from __future__ import annotations

import phonenumbers


def portal_e164(raw: str) -> str | None:
    """The E.164 form the portal's ingestion computes (`phonenumbers.parse(raw, "SA")`, usable when at
    least possible: docs/SYSTEM_OVERVIEW.md, "Semantics"), or None when the number is not usable."""
    try:
        number = phonenumbers.parse(raw, "SA")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
