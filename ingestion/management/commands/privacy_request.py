"""privacy_request open|extend|close|show|list: data-subject requests and their 30-day clock (audited).

  open --kind K --channel C --phone P [--reference R] [--received-at ISO]
  extend ID --days N --reason R        (once, N <= 30)
  close ID --outcome TEXT [--refused]
  show ID                              (the request and its actions, as JSON; no number in clear)
  list [--open]
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.audit import Actor
from core.commands import OneLineErrorCommand, add_record_verb
from ingestion.dsr import RequestError, request_close, request_extend, request_open
from ingestion.models import DataSubjectRequest, RequestChannel, RequestKind
from ingestion.privacy import PhoneNotUsable


def request_document(request: DataSubjectRequest) -> dict[str, Any]:
    """A request as JSON: masked number and keyed hash only."""
    return {
        "id": request.pk, "kind": request.kind, "channel": request.channel, "status": request.status,
        "phone_masked": request.phone_masked, "phone_hmac": request.phone_hmac,
        "reference": request.reference,
        "received_at": request.received_at.isoformat(), "due_at": request.due_at.isoformat(),
        "extended_days": request.extended_days, "extension_reason": request.extension_reason,
        "closed_at": request.closed_at.isoformat() if request.closed_at else None, "outcome": request.outcome,
        "actions": [{"kind": a.kind, "at": a.at.isoformat(), "actor": a.actor, "detail": a.detail,
                     "receipt": a.receipt_id} for a in request.actions.all()],
    }


class Command(OneLineErrorCommand):
    help = "Record, extend, close and show data-subject requests (30 days to answer, one extension)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True)
        opened = sub.add_parser("open")
        opened.add_argument("--kind", required=True, choices=RequestKind.values)
        opened.add_argument("--channel", required=True, choices=RequestChannel.values)
        opened.add_argument("--phone", required=True, help="The number, in any spelling (stored hashed).")
        opened.add_argument("--reference", default="")
        opened.add_argument("--received-at", type=dt.datetime.fromisoformat,
                            help="When it was received (ISO 8601); default now.")
        extend = add_record_verb(sub, "extend")
        extend.add_argument("--days", type=int, required=True)
        extend.add_argument("--reason", required=True)
        close = add_record_verb(sub, "close")
        close.add_argument("--outcome", required=True)
        close.add_argument("--refused", action="store_true")
        add_record_verb(sub, "show")
        listing = sub.add_parser("list")
        listing.add_argument("--open", action="store_true", dest="only_open")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.command("privacy_request")
        try:
            self.stdout.write(self._do(options, actor))
        except (RequestError, PhoneNotUsable) as exc:
            raise CommandError(f"privacy_request: {exc}") from None
        except DataSubjectRequest.DoesNotExist:
            raise CommandError("privacy_request: no such request") from None

    def _do(self, options: dict[str, Any], actor: Actor) -> str:
        verb = options["verb"]
        if verb == "open":
            received = options["received_at"]
            if received is not None and timezone.is_naive(received):
                received = timezone.make_aware(received)
            request = request_open(kind=options["kind"], channel=options["channel"], phone=options["phone"],
                                   reference=options["reference"], received_at=received, actor=actor)
        elif verb == "extend":
            request = request_extend(request_id=options["id"], days=options["days"], reason=options["reason"],
                                     actor=actor)
        elif verb == "close":
            request = request_close(request_id=options["id"], outcome=options["outcome"],
                                    refused=options["refused"], actor=actor)
        elif verb == "show":
            request = DataSubjectRequest.objects.get(pk=options["id"])
        else:
            rows = DataSubjectRequest.objects.order_by("due_at")
            if options["only_open"]:
                rows = rows.filter(closed_at__isnull=True)
            return "\n".join(f"{r.pk}\t{r.kind}\t{r.status}\t{r.phone_masked}\tdue {r.due_at:%Y-%m-%d}"
                             for r in rows)
        return json.dumps(request_document(request), ensure_ascii=False, indent=2)
