"""What the alert commands share: a one-line error on bad arguments (DESIGN contract), no usage dump."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class OneLineErrorCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None  # type: ignore[method-assign]  # the error line is enough
        return parser
