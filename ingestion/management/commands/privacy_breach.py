"""privacy_breach open|notified|draft|list: the breach register and its 72-hour clock (audited).

  open --title T --description D --classes "leads: phones" [--discovered-at ISO] [--subjects N]
       [--records N] [--consequences T] [--actions T] [--contact C]
  notified ID --reference R [--at ISO]   (stops the breach_deadline alerts)
  draft ID                               (the notification text to review)
  list
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.audit import Actor
from core.commands import OneLineErrorCommand, add_record_verb
from ingestion.breach import (
    breach_deadline,
    breach_notification_draft,
    breach_notification_record,
    breach_open,
)
from ingestion.models import BreachIncident


def _moment(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(OneLineErrorCommand):
    help = "Record a personal-data breach, its notification, and print the notification draft."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        opened = sub.add_parser("open")
        opened.add_argument("--title", required=True)
        opened.add_argument("--description", required=True)
        opened.add_argument("--classes", required=True, help="Data classes affected, one per line.")
        opened.add_argument("--discovered-at", help="When we became aware (ISO 8601); default now.")
        opened.add_argument("--subjects", type=int)
        opened.add_argument("--records", type=int)
        opened.add_argument("--consequences", default="")
        opened.add_argument("--actions", default="")
        opened.add_argument("--contact", default="")
        notified = add_record_verb(sub, "notified")
        notified.add_argument("--reference", required=True)
        notified.add_argument("--at", help="When the authority was notified (ISO 8601); default now.")
        add_record_verb(sub, "draft")
        sub.add_parser("list")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command("privacy_breach")
        verb = options["verb"]
        if verb == "open":
            incident = breach_open(
                title=options["title"], description=options["description"], data_classes=options["classes"],
                discovered_at=_moment(options["discovered_at"]) or timezone.now(), actor=actor,
                approx_subjects=options["subjects"], approx_records=options["records"],
                consequences=options["consequences"], actions=options["actions"], contact=options["contact"])
            self.stdout.write(f"breach {incident.pk}: notify the authority by "
                              f"{timezone.localtime(breach_deadline(incident)):%Y-%m-%d %H:%M %Z}")
            return
        if verb == "list":
            for row in BreachIncident.objects.order_by("-discovered_at"):
                state = f"notified {row.notified_at:%Y-%m-%d %H:%M}" if row.notified_at else "NOT NOTIFIED"
                self.stdout.write(f"{row.pk}\t{row.discovered_at:%Y-%m-%d %H:%M}\t{state}\t{row.title}")
            return
        found = BreachIncident.objects.filter(pk=options["id"]).first()
        if found is None:
            raise CommandError(f"privacy_breach: no incident {options['id']}")
        if verb == "notified":
            breach_notification_record(incident=found, reference=options["reference"], actor=actor,
                                       notified_at=_moment(options["at"]))
            self.stdout.write(f"breach {found.pk}: notification recorded")
            return
        self.stdout.write(breach_notification_draft(incident=found), ending="")
