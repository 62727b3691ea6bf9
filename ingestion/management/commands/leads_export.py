"""leads_export --format csv|jsonl [--provider P] [--since DAY] [--masked] [--out FILE]: export leads.

Leads whose number is on the suppression list are left out and a suppressed number written in
another lead's text is replaced (ingestion/exports.py); how many were left out is printed on stderr
and kept in the audit row (`leads.export`).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from core.audit import Actor, staff_action_record
from core.commands import OneLineErrorCommand
from core.csv import csv_value
from ingestion.exports import EXPORT_FIELDS, jsonl_line, lead_export
from ingestion.models import Lead


class Command(OneLineErrorCommand):
    help = "Export leads as CSV or JSON Lines, without suppressed numbers (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
        parser.add_argument("--provider", help="Only this provider's leads.")
        parser.add_argument("--since", type=dt.date.fromisoformat,
                            help="Only leads received on or after this local day (YYYY-MM-DD).")
        parser.add_argument("--masked", action="store_true", help="Mask every phone number in the file.")
        parser.add_argument("--out", type=Path, help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        queryset = Lead.objects.all()
        filters = {}
        if options["provider"]:
            queryset, filters["provider"] = queryset.filter(provider=options["provider"]), options["provider"]
        if options["since"]:
            queryset = queryset.filter(local_day__gte=options["since"])
            filters["since"] = options["since"].isoformat()
        export = lead_export(queryset=queryset)
        rows = export.queryset.count()
        staff_action_record(actor=Actor.command("leads_export"), action="leads.export",
                            object_type="ingestion.lead", object_count=rows,
                            detail={"format": options["format"], "filters": filters, "rows": rows,
                                    "masked": options["masked"], "left_out_suppressed": export.left_out})
        out = options["out"].open("w", encoding="utf-8", newline="") if options["out"] else self.stdout
        try:
            if options["format"] == "csv":
                writer = csv.writer(out)
                writer.writerow(EXPORT_FIELDS)
                for row in export.rows(masked=options["masked"]):
                    writer.writerow([csv_value(value) for value in row])
            else:
                for record in export.records(masked=options["masked"]):
                    out.write(jsonl_line(record))
        finally:
            if options["out"]:
                out.close()
        self.stderr.write(f"exported {rows} lead(s); left out {export.left_out} with a suppressed number")
