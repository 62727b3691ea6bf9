"""version: print the LeadOps release this installation runs (docs/CHANGELOG.md)."""

from __future__ import annotations

from core.commands import OneLineErrorCommand
from leadops import __version__


class Command(OneLineErrorCommand):
    help = "Print the LeadOps version (semantic versioning; docs/CHANGELOG.md)."

    def handle(self, *args, **options):
        self.stdout.write(__version__)
