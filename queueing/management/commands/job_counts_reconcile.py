"""job_counts_reconcile: recount jobs per provider and state, correct the monitor's maintained counts."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from queueing.services import job_state_counts_reconcile


class Command(BaseCommand):
    help = ("Recount jobs per provider and state from the job rows and add any difference to the "
            "maintained counts the monitor reads (safe while the portal runs; nothing is locked).")

    def handle(self, *args, **options):
        corrections = job_state_counts_reconcile()
        for provider_id, state, delta in corrections:
            self.stdout.write(f"provider {provider_id}\t{state}\t{delta:+d}")
        self.stdout.write(f"{len(corrections)} correction(s); the counts now equal a recount.")
