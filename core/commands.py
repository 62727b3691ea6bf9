"""What the management commands share (docs/RUNBOOK.md, "Management commands")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class OneLineErrorCommand(BaseCommand):
    """A bad argument ends in one error line; argparse would print its usage block first.

    `--help` still prints the usage.
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None  # type: ignore[method-assign]
        return parser


def add_json_option(parser: CommandParser) -> None:
    """`--json`: print the answer as one JSON object instead of a line for people."""
    parser.add_argument("--json", action="store_true", dest="as_json")


def add_record_verb(verbs: Any, name: str) -> CommandParser:
    """A sub-command that acts on one record, named by its id: `privacy_request close 12 ...`."""
    parser: CommandParser = verbs.add_parser(name)
    parser.add_argument("id", type=int)
    return parser


def write_answer(command: BaseCommand, answer: Mapping[str, Any], *, as_json: bool, text: str) -> None:
    """Print `answer` as JSON under `--json`, else `text`."""
    command.stdout.write(json.dumps(answer) if as_json else text)
