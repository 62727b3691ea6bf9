"""create_worker ID [--channel C] [--rate-limit N] [--json]: the secret is printed once.

With --enroll [--enroll-hours H] no key is made: a one-time enrollment token is printed instead
(`{"worker_id", "enrollment_token", "expires_at"}` with --json), which the worker exchanges at
POST /api/v1/enroll for its key id and secret.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.audit import Actor
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_create, worker_create_for_enrollment


class Command(BaseCommand):
    help = "Create a worker and print its id, key id and secret (shown this once)."

    def add_arguments(self, parser):
        parser.add_argument("worker_id")
        parser.add_argument("--channel", default="stable")
        parser.add_argument("--rate-limit", type=int, default=None, dest="rate_limit")
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", dest="as_json")
        parser.add_argument("--enroll", action="store_true",
                            help="Print a one-time enrollment token instead of a secret.")
        parser.add_argument("--enroll-hours", type=float, default=None, dest="enroll_hours",
                            help="Life of the enrollment token (default LEADOPS_ENROLLMENT_TTL_HOURS, 24).")

    def handle(self, *args, worker_id: str, channel: str, rate_limit: int | None, name: str,
               as_json: bool, enroll: bool = False, enroll_hours: float | None = None, **options):
        if rate_limit is not None and rate_limit < 1:
            raise CommandError("--rate-limit must be a positive number of requests per minute.")
        if Worker.objects.filter(pk=worker_id).exists():
            raise CommandError(f"Worker {worker_id!r} already exists; rotate its secret instead.")
        if enroll_hours is not None and (not enroll or enroll_hours <= 0):
            raise CommandError("--enroll-hours needs --enroll and a positive number of hours.")
        if enroll:
            self._create_for_enrollment(worker_id=worker_id, name=name, channel=channel,
                                        rate_limit=rate_limit, hours=enroll_hours, as_json=as_json)
            return
        try:
            _, issued = worker_create(worker_id=worker_id, name=name, channel=channel,
                                      rate_limit_per_min=rate_limit, actor=Actor.command("create_worker"))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self._print(issued.as_dict(), as_json=as_json,
                    text=f"worker_id: {issued.worker_id}\nkey_id:    {issued.key_id}\n"
                         f"secret:    {issued.secret}\nStore the secret now: it is not shown again.")

    def _create_for_enrollment(self, *, worker_id: str, name: str, channel: str, rate_limit: int | None,
                               hours: float | None, as_json: bool) -> None:
        try:
            _, issued = worker_create_for_enrollment(
                worker_id=worker_id, name=name, channel=channel, rate_limit_per_min=rate_limit,
                hours=hours, actor=Actor.command("create_worker"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self._print(issued.as_dict(), as_json=as_json,
                    text=f"worker_id:        {issued.worker_id}\nenrollment_token: {issued.token}\n"
                         f"expires_at:       {issued.expires_at.isoformat()}\n"
                         "Give the token to the worker (python -m worker_client --enroll-token ...); "
                         "it works once and is not shown again.")

    def _print(self, answer: dict, *, as_json: bool, text: str) -> None:
        # What was issued is printed once, here, and never logged.
        self.stdout.write(json.dumps(answer) if as_json else text)
