"""ingest_probe [--file F]

Ingests a known set of leads through the real ingest path (provider "probe", worker "probe", its own
fingerprint scope; rolled back after the run) and prints one JSON line:
{"added": a, "duplicates": d, "invalid": i, "suppressed": s}. F is a JSON array of leads in the
protocol's shape, or CSV with a header row; without it, a built-in sample of Saudi leads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from core.commands import OneLineErrorCommand
from ingestion.probe import SAMPLE_LEADS, ProbeFileError, probe_file_rows, probe_run


class Command(OneLineErrorCommand):
    help = "Ingest a probe batch of leads (a file, or a built-in sample) and print the counts as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--file", type=Path, help="a JSON array of leads, or CSV with a header row")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = probe_file_rows(options["file"]) if options["file"] else SAMPLE_LEADS
            outcome = probe_run(raw_rows=rows)
        except ProbeFileError as exc:
            raise CommandError(f"ingest_probe: {exc}") from None
        result = outcome.result
        self.stdout.write(json.dumps({"added": result.added, "duplicates": result.duplicates,
                                      "invalid": result.invalid, "suppressed": result.suppressed}))
