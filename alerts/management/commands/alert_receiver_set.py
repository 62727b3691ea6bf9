"""alert_receiver_set NAME (--slack URL | --teams URL | --email ADDR[,ADDR] | --webhook URL [--secret S]
| --alertmanager URL) [--send-resolved | --no-send-resolved].

A flag not given keeps the receiver's stored value (docs/RUNBOOK.md, "Alert receivers")."""

from __future__ import annotations

from django.core.management.base import CommandError

from alerts.models import ReceiverKind
from alerts.services import AlertsError, receiver_set
from core.audit import Actor
from core.commands import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = (
        "Create or change an alert receiver. While no route is set in admin, every alert goes to every "
        "receiver. URLs and secrets are stored encrypted."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        kind = parser.add_mutually_exclusive_group(required=True)
        kind.add_argument("--slack", metavar="URL", help="a Slack incoming webhook URL")
        kind.add_argument("--teams", metavar="URL", help="a Microsoft Teams Workflows webhook URL")
        kind.add_argument("--email", metavar="ADDR[,ADDR]", help="email addresses (sent through EMAIL_URL)")
        kind.add_argument("--webhook", metavar="URL", help="a URL that takes Alertmanager's webhook JSON")
        kind.add_argument("--alertmanager", metavar="URL", help="an Alertmanager (posts to /api/v2/alerts)")
        parser.add_argument("--secret", help="HMAC key of the X-LeadOps-Signature header (--webhook only)")
        resolved = parser.add_mutually_exclusive_group()
        resolved.add_argument("--send-resolved", dest="send_resolved", action="store_true", default=None,
                              help="also notify when alerts resolve")
        resolved.add_argument("--no-send-resolved", dest="send_resolved", action="store_false",
                              help="notify only when alerts fire")

    def handle(
        self, *args, name, slack, teams, email, webhook, alertmanager, secret, send_resolved, **options
    ):
        if secret is not None and webhook is None:
            raise CommandError("--secret goes with --webhook only.")
        kind, value = next(
            (kind, value)
            for kind, value in (
                (ReceiverKind.SLACK, slack),
                (ReceiverKind.TEAMS, teams),
                (ReceiverKind.EMAIL, email),
                (ReceiverKind.WEBHOOK, webhook),
                (ReceiverKind.ALERTMANAGER, alertmanager),
            )
            if value is not None
        )
        try:
            receiver = receiver_set(
                name=name,
                kind=kind,
                url=None if kind == ReceiverKind.EMAIL else value,
                addresses=value if kind == ReceiverKind.EMAIL else None,
                secret=secret,
                send_resolved=send_resolved,
                actor=Actor.command("alert_receiver_set"),
            )
        except AlertsError as exc:
            raise CommandError(str(exc)) from None
        where = receiver.addresses if kind == ReceiverKind.EMAIL else receiver.url_hint
        self.stdout.write(
            f"Receiver {receiver.name}: {receiver.get_kind_display()} {where}"
            f"{', signed' if receiver.secret_encrypted else ''}"
            f"{', sends resolved' if receiver.send_resolved else ''}."
        )
