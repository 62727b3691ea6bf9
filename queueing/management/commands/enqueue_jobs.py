"""enqueue_jobs --provider P --count N [--payload JSON] [--priority K]."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.audit import Actor
from queueing.services import jobs_enqueue, provider_get_or_create


class Command(BaseCommand):
    help = "Create N queued jobs for a provider (created with the default policy when new)."

    def add_arguments(self, parser):
        parser.add_argument("--provider", required=True)
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--payload", default="{}", help="A JSON object given to every job.")
        parser.add_argument("--priority", type=int, default=0)
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, provider: str, count: int, payload: str, priority: int, as_json: bool,
               **options):
        if count < 1 or count > 1_000_000:
            raise CommandError("--count must be between 1 and 1,000,000.")
        if not -32768 <= priority <= 32767:
            raise CommandError("--priority must fit in a small integer (-32768..32767).")
        try:
            job_payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--payload is not valid JSON: {exc.msg}") from None
        if not isinstance(job_payload, dict):
            raise CommandError("--payload must be a JSON object.")
        try:
            provider_obj = provider_get_or_create(name=provider)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        created = 0
        for start in range(0, count, 10_000):
            size = min(10_000, count - start)
            created += len(jobs_enqueue(provider=provider_obj, payloads=[job_payload] * size,
                                        priority=priority, actor=Actor.command("enqueue_jobs")))
        if as_json:
            self.stdout.write(json.dumps({"provider": provider_obj.name, "created": created}))
        else:
            self.stdout.write(f"Enqueued {created} jobs for provider {provider_obj.name}.")
