"""privacy_export --phone P [--request ID] [--out FILE]: everything held on a number as JSON (audited).

With --request the export is linked to the data-subject request (file name, SHA-256, counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from core.audit import Actor
from ingestion.dsr import request_export
from ingestion.management.commands._phone import PhoneCommand
from ingestion.privacy import export_text, privacy_export


class Command(PhoneCommand):
    help = "Print everything held on a phone number as JSON (a data-subject access request)."
    takes_request = True

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--out", type=Path, help="Write the export to this file instead of printing it.")

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        out: Path | None = options["out"]
        if options["request_id"] is not None:
            _, text = request_export(request_id=options["request_id"], phone=phone, actor=actor,
                                     file_name=out.name if out else "")
        else:
            text = export_text(privacy_export(phone=phone, actor=actor))
        if out is None:
            return text
        out.write_text(text + "\n", encoding="utf-8")
        return str(out)
