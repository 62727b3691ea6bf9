"""evidence_capture --out DIR [--step NAME]...: the seed's evidence pack, dated, with index.md.

Exits 0 once written, whatever the gates say (docs/PRODUCTION_READINESS.md, "Reading the evidence pack").
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from core.commands import OneLineErrorCommand
from leadops.readiness import STEPS, evidence_capture


class Command(OneLineErrorCommand):
    help = "Write the evidence pack of every readiness gate (or the --step ones) under DIR/<date>/."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="The folder the dated pack is written under.")
        parser.add_argument("--step", action="append", dest="steps", default=[], metavar="NAME",
                            help=f"Only this gate's step (repeatable): {', '.join(STEPS)}.")

    def handle(self, *args, out: str, steps: list[str], **options):
        unknown = [step for step in steps if step not in STEPS]
        if unknown:
            raise CommandError(f"Unknown step {unknown[0]!r}: one of {', '.join(STEPS)}.")
        target = Path(out)
        if target.exists() and not target.is_dir():
            raise CommandError(f"--out {out} is not a folder.")
        try:
            root = evidence_capture(out=target, steps=list(dict.fromkeys(steps)) or None)
        except OSError as exc:
            raise CommandError(f"Cannot write the pack under {out}: {exc.strerror or exc}") from None
        self.stdout.write(f"Evidence pack written: {root / 'index.md'}")
