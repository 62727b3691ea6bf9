"""alert_silence_add --match LABEL=VALUE [--match ...] --minutes M --comment C [--author A]; prints the id."""

from __future__ import annotations

import datetime as dt
import getpass

from django.core.management.base import CommandError
from django.utils import timezone

from alerts.matchers import MatcherError, matcher_parse
from alerts.services import AlertsError, silence_create
from core.audit import Actor
from core.commands import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = (
        "Silence alerts whose labels match every --match (=, !=, =~, !~) for M minutes from now; "
        "prints the silence id."
    )

    def add_arguments(self, parser):
        parser.add_argument("--match", action="append", required=True, metavar="LABEL=VALUE")
        parser.add_argument("--minutes", type=int, required=True)
        parser.add_argument("--comment", required=True)
        parser.add_argument("--author", help="who asks (default: the shell user)")

    def handle(self, *args, match, minutes, comment, author, **options):
        if minutes <= 0:
            raise CommandError("--minutes must be a positive number.")
        try:
            matchers = [matcher_parse(text) for text in match]
            now = timezone.now()
            silence = silence_create(
                matchers=matchers,
                starts_at=now,
                ends_at=now + dt.timedelta(minutes=minutes),
                created_by=author or getpass.getuser(),
                comment=comment,
                actor=Actor.command("alert_silence_add"),
            )
        except (MatcherError, AlertsError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(silence.pk))
