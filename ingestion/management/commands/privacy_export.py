"""privacy_export --phone P: print as JSON everything held on a number, in any spelling (audited)."""

from __future__ import annotations

import json
from typing import Any

from core.audit import Actor
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import privacy_export


class Command(PhoneCommand):
    help = "Print everything held on a phone number as JSON (a data-subject access request)."

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        data = privacy_export(phone=phone, actor=actor)
        return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
