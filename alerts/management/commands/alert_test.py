"""alert_test NAME: send a test notification to one receiver; exit non-zero when it is not delivered."""

from __future__ import annotations

from django.core.management.base import CommandError

from alerts.models import Receiver
from alerts.services import receiver_test
from core.commands import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = "Send a test notification to one receiver now (logged in the delivery log)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        receiver = Receiver.objects.filter(name=name).first()
        if receiver is None:
            raise CommandError(f"No receiver named {name!r}.")
        attempt = receiver_test(receiver=receiver)
        if not attempt.ok:
            raise CommandError(f"Not delivered to {receiver.name}: {attempt.error or 'failed'}")
        self.stdout.write(f"Delivered to {receiver.name} in {attempt.latency_ms} ms.")
