"""The shape of the privacy commands: --phone P (any spelling) [--reason R], audited as the command."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import Actor
from ingestion.dsr import RequestError
from ingestion.privacy import PhoneNotUsable


class PhoneCommand(BaseCommand):
    """A command about one phone number; an unusable number or an empty reason is a one-line error."""

    reason_help = ""  # set: the command takes a required --reason with this help
    takes_request = False  # set: the command takes --request ID (a data-subject request to link to)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phone", required=True, help="The number, in any spelling.")
        if self.reason_help:
            parser.add_argument("--reason", required=True, help=self.reason_help)
        if self.takes_request:
            parser.add_argument("--request", type=int, dest="request_id",
                                help="The data-subject request this answers: the result is linked to it "
                                     "(the number must be the request's).")

    def act(self, *, phone: str, actor: Actor, options: dict[str, Any]) -> str:
        """Do the change; return the line to print."""
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        if self.reason_help and not options["reason"].strip():
            raise CommandError("--reason: a reason is required")
        # The audit names the command as it was called: its module is its name.
        actor = Actor.command(type(self).__module__.rpartition(".")[2])
        try:
            line = self.act(phone=options["phone"], actor=actor, options=options)
        except PhoneNotUsable as exc:
            raise CommandError(f"--phone: {exc}") from None
        except RequestError as exc:
            raise CommandError(f"--request: {exc}") from None
        self.stdout.write(line)
