"""readiness [--json]: the seed's Go/No-Go, each gate with its why; exits 0 on go, 1 on no-go.

docs/PRODUCTION_READINESS.md says what each gate checks; docs/RUNBOOK.md, "Go/No-Go", the routine.
"""

from __future__ import annotations

import json
import sys

from core.commands import OneLineErrorCommand
from leadops.readiness import readiness_check, readiness_record


class Command(OneLineErrorCommand):
    help = "Go/No-Go: check every readiness gate now; exit 0 when all hold, 1 otherwise."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help='Print {"go", "checked_at", "gates": [{"name", "ok", "why", "evidence"}]}.')

    def handle(self, *args, as_json: bool, **options):
        readiness = readiness_check()
        readiness_record(readiness=readiness)
        if as_json:
            self.stdout.write(json.dumps(readiness.as_dict(), ensure_ascii=False))
        else:
            verdict = "GO" if readiness.go else "NO-GO"
            self.stdout.write(f"{verdict} ({readiness.checked_at:%Y-%m-%d %H:%M:%S} UTC)")
            for gate in readiness.gates:
                self.stdout.write(f"  [{'ok' if gate.ok else 'NO'}] {gate.name}: {gate.why}")
        if not readiness.go:
            sys.exit(1)
