"""create_worker ID [--channel C] [--rate-limit N] [--json]: the secret is printed once."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from workers_mgmt.models import Worker
from workers_mgmt.services import worker_create


class Command(BaseCommand):
    help = "Create a worker and print its id, key id and secret (shown this once)."

    def add_arguments(self, parser):
        parser.add_argument("worker_id")
        parser.add_argument("--channel", default="stable")
        parser.add_argument("--rate-limit", type=int, default=None, dest="rate_limit")
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, worker_id: str, channel: str, rate_limit: int | None, name: str,
               as_json: bool, **options):
        if rate_limit is not None and rate_limit < 1:
            raise CommandError("--rate-limit must be a positive number of requests per minute.")
        if Worker.objects.filter(pk=worker_id).exists():
            raise CommandError(f"Worker {worker_id!r} already exists; rotate its secret instead.")
        try:
            _, issued = worker_create(worker_id=worker_id, name=name, channel=channel,
                                      rate_limit_per_min=rate_limit)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        if as_json:
            self.stdout.write(json.dumps(issued.as_dict()))
        else:
            self.stdout.write(f"worker_id: {issued.worker_id}\nkey_id:    {issued.key_id}\n"
                              f"secret:    {issued.secret}\n"
                              "Store the secret now: it is not shown again.")
