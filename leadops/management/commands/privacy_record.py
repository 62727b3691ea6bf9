"""privacy_record [--json | --markdown] [--out FILE]: the record of processing from the live configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from core.commands import OneLineErrorCommand
from leadops.privacy_record import privacy_record, privacy_record_markdown


class Command(OneLineErrorCommand):
    help = "Print the record of processing (purposes, data classes and retention, sources, recipients, ...)."

    def add_arguments(self, parser: CommandParser) -> None:
        shape = parser.add_mutually_exclusive_group()
        shape.add_argument("--json", action="store_true", dest="as_json", help="One JSON object.")
        shape.add_argument("--markdown", action="store_true", help="Markdown tables (the default).")
        parser.add_argument("--out", type=Path, help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        record = privacy_record()
        text = (json.dumps(record, ensure_ascii=False, indent=2) if options["as_json"]
                else privacy_record_markdown(record))
        if options["out"]:
            options["out"].write_text(text + "\n", encoding="utf-8")
            self.stdout.write(str(options["out"]))
        else:
            self.stdout.write(text)
