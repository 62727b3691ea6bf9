"""dlq list|requeue|purge [--provider P]: the dead-letter queue for operators."""

from __future__ import annotations

from django.core.management.base import CommandError

from core.audit import Actor
from core.commands import OneLineErrorCommand
from queueing.models import Provider
from queueing.selectors import dead_jobs
from queueing.services import dlq_purge, dlq_requeue


class Command(OneLineErrorCommand):
    help = "List, requeue (attempts reset) or purge dead jobs, optionally of one provider."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "requeue", "purge"])
        parser.add_argument("--provider")
        parser.add_argument("--limit", type=int, default=100, help="Rows shown by `list` (default 100).")

    def handle(self, *args, action: str, provider: str | None, limit: int, **options):
        if provider is not None and not Provider.objects.filter(name=provider).exists():
            raise CommandError(f"No provider named {provider!r}.")
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        if action == "list":
            jobs = dead_jobs(provider=provider)
            total = jobs.count()
            for job in jobs[:limit]:
                error = job.last_error or {}
                code = error.get("code", "") if isinstance(error, dict) else ""
                self.stdout.write(f"{job.pk}\t{job.provider.name}\t{job.dead_reason}\t"
                                  f"{job.attempts}/{job.max_attempts}\t{code}\t"
                                  f"{job.finished_at.isoformat() if job.finished_at else ''}")
            self.stdout.write(f"{total} dead job(s).")
        elif action == "requeue":
            requeued = dlq_requeue(provider=provider, actor=Actor.command("dlq"))
            self.stdout.write(f"Requeued {requeued} dead job(s).")
        else:
            purged = dlq_purge(provider=provider, actor=Actor.command("dlq"))
            self.stdout.write(f"Purged {purged} dead job(s).")
