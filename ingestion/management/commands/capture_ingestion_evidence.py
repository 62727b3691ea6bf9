"""capture_ingestion_evidence

Runs the ingestion probe (the built-in sample, rolled back after the run) and writes two evidence
files under STORAGE_DIR: `logs/validation/ingestion_probe.json` (the probe's counts, timestamps, what
the database held for the probe inside its transaction, and what it left behind: nothing) and
`logs/validation/usage_counters_today.json` (today's counters: totals, per
provider and per worker). Prints the two paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from core.commands import OneLineErrorCommand
from ingestion.probe import PROBE_PROVIDER, PROBE_SCOPE, PROBE_WORKER, SAMPLE_LEADS, ProbeFileError, probe_run
from ingestion.selectors import counters_today
from ingestion.services import dedup_scope


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a file.
    partial = path.with_suffix(path.suffix + ".tmp")
    partial.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)


class Command(OneLineErrorCommand):
    help = "Run the ingestion probe and write ingestion_probe.json and usage_counters_today.json."

    def handle(self, *args: Any, **options: Any) -> None:
        folder = Path(settings.STORAGE_DIR) / "logs" / "validation"
        try:
            outcome = probe_run(raw_rows=SAMPLE_LEADS)
        except ProbeFileError as exc:
            raise CommandError(f"capture_ingestion_evidence: {exc}") from None
        result = outcome.result
        local_start = timezone.localtime(outcome.started_at)
        probe = {
            "added": result.added,
            "duplicates": result.duplicates,
            "invalid": result.invalid,
            "suppressed": result.suppressed,
            "duplicates_in_batch": result.duplicates_in_batch,
            "duplicates_existing": result.duplicates_existing,
            "leads": outcome.leads,
            "provider": PROBE_PROVIDER,
            "worker_id": PROBE_WORKER,
            "started_at": outcome.started_at.isoformat(),
            "finished_at": outcome.finished_at.isoformat(),
            "time_zone": settings.TIME_ZONE,
            "local_day": local_start.date().isoformat(),
            "dedup_scope": PROBE_SCOPE,
            "real_dedup_scope": dedup_scope(received_at=outcome.started_at),
            # Inside the probe's transaction, before its rows were rolled back; then what is left (0).
            "database": outcome.database,
            "rolled_back": True,
            "left_behind": outcome.left_behind,
        }
        counters = {**counters_today(), "captured_at": timezone.now().isoformat()}
        probe_path = folder / "ingestion_probe.json"
        counters_path = folder / "usage_counters_today.json"
        try:
            _write_json(probe_path, probe)
            _write_json(counters_path, counters)
        except OSError as exc:
            raise CommandError(
                f"capture_ingestion_evidence: cannot write to {folder}: {exc.strerror}"
            ) from None
        self.stdout.write(str(probe_path))
        self.stdout.write(str(counters_path))
