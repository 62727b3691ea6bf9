"""What the release commands share: who acts, --version and --json, how a refusal becomes a one-line error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.management.base import BaseCommand, CommandError

from core.audit import Actor
from core.commands import add_json_option
from releases_app.services import ReleaseRefused

T = TypeVar("T")


def command_actor(command: BaseCommand) -> Actor:
    """The audit trail's actor for a command: `command:<its name>` (docs/SYSTEM_OVERVIEW.md)."""
    return Actor.command(type(command).__module__.rpartition(".")[2])


class ReleaseVersionCommand(BaseCommand):
    """A command about one release: `--version V` names it (Django's own `--version` would print
    Django's version), `--json` prints the answer as JSON. Subclasses add their own options."""

    def add_base_argument(self, parser, *args, **kwargs):
        if "--version" in args:
            return
        super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--version", required=True, dest="release_version")
        self.add_release_arguments(parser)
        add_json_option(parser)

    def add_release_arguments(self, parser) -> None:
        """The command's options besides --version and --json."""


def refused_as_error(call: Callable[[], T]) -> T:
    try:
        return call()
    except ReleaseRefused as exc:
        raise CommandError(str(exc)) from None
