"""purge_retention [--dry-run] [--json]: apply the retention policy to every data class (audited)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from core.audit import Actor
from leadops.retention import retention_purge


class Command(BaseCommand):
    help = ("Delete the rows of every data class older than its retention policy, in batches "
            "(docs/PRIVACY.md, Retention). Also runs daily on the q cluster.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument("--json", action="store_true",
                            help="Print the counts per class as one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        # A progress bar only for a person at a terminal; a schedule or a pipe gets none.
        interactive = not options["json"] and sys.stderr.isatty()

        def progress(name: str, done: int, total: int) -> None:
            width = 28
            filled = width * done // total
            bar = "#" * filled + "." * (width - filled)
            self.stderr.write(f"\r[{bar}] {done}/{total} {name:<20}", ending="")
            if done == total:
                self.stderr.write("")

        result = retention_purge(actor=Actor.command("purge_retention"), dry_run=options["dry_run"],
                                 progress=progress if interactive else None)
        if options["json"]:
            self.stdout.write(json.dumps(result, sort_keys=True))
            return
        verb = "would delete" if result["dry_run"] else "deleted"
        for name, count in result["counts"].items():
            self.stdout.write(f"{name:<20} {'kept forever' if count is None else f'{verb} {count}'}")
