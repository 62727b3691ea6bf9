"""`purge_retention --dry-run` is the purge with nothing deleted: the same batches, the same counts.

docs/RUNBOOK.md, "Retention and data-subject requests".
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from alerts.models import Silence
from ingestion.models import Lead
from leadops import retention
from leadops.retention import retention_policies_ensure
from queueing.models import AttemptEvidence, Job, JobAttempt, JobState, ReportReceipt
from tests.factories import make_jobs
from tests.ingestion.conftest import ingest, lead
from tests.leadops.conftest import purge_retention

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


def snapshot() -> dict[str, int]:
    """Rows of every table of the project's apps, and the log tails and evidence files still there."""
    rows = {model._meta.label: model._default_manager.count() for model in apps.get_models()
            if model._meta.app_label in {"core", "leadops", "ingestion", "queueing", "workers_mgmt", "alerts"}}
    rows["log tails"] = JobAttempt.objects.exclude(log_tail="").count()
    rows["evidence files"] = sum(default_storage.exists(name)
                                 for name in AttemptEvidence.objects.values_list("storage_name", flat=True))
    return rows


@pytest.fixture
def tangled(clock, settings, tmp_path):
    """Expired rows of several classes, some of which a later class's delete would take along.

    A job finished 40 days ago (the attempts class) has an expired receipt (receipts), an attempt
    with an expired log tail (evidence) and an expired screenshot; with more rows than one batch.
    """
    settings.LEADOPS_FINGERPRINT_KEY = "k"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LEADOPS_JOB_RETENTION_DAYS = 30
    now = timezone.now()
    ingest([lead(f"old{n}", f"05000000{n:02d}") for n in range(5)], received_at=now - 400 * DAY)
    jobs = make_jobs(4)
    old = now - 40 * DAY
    Job.objects.filter(pk__in=[job.pk for job in jobs[:3]]).update(state=JobState.SUCCEEDED, finished_at=old)
    Job.objects.filter(pk=jobs[3].pk).update(state=JobState.DEAD, finished_at=old)
    for job in jobs:
        attempt = JobAttempt.objects.create(job=job, number=1, claimed_at=old, log_tail="tail")
        ReportReceipt.objects.create(worker_id="w", idempotency_key=f"k{job.pk}", request_hash="h", job=job,
                                     response={}, created_at=old)
        name = default_storage.save(f"evidence/test/{job.pk}.png", ContentFile(b"png"))
        AttemptEvidence.objects.create(storage_name=name, content_type="image/png", size=3, sha256="0" * 64,
                                       width=1, height=1, created_at=old, attempt=attempt, job=job)
    for _ in range(3):
        Silence.objects.create(matchers=[], starts_at=old, ends_at=old, created_by="a", comment="c")
    return list(AttemptEvidence.objects.values_list("storage_name", flat=True))


def test_dry_run_counts_what_the_purge_then_deletes_and_deletes_nothing(tangled, monkeypatch):
    # Batches of two, so every batched class walks several batches in both runs.
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "LEAD_BATCH", 2)
    retention_policies_ensure()
    before = snapshot()

    dry = purge_retention("--dry-run")

    after = snapshot()
    # Nothing went; the only new rows are the dry run's own audit row and the monitor event it publishes.
    assert {label for label in before if after[label] != before[label]} == {"core.StaffAction",
                                                                             "leadops.MonitorEvent"}
    assert after["core.StaffAction"] == before["core.StaffAction"] + 1
    assert after["leadops.MonitorEvent"] == before["leadops.MonitorEvent"] + 1
    real = purge_retention()
    assert dry["dry_run"] and not real["dry_run"]
    assert dry["counts"] == real["counts"]
    # The tangled rows were counted where they are deleted, before the job that would take them along.
    counts = real["counts"]
    assert (counts["receipts"], counts["evidence"], counts["attempts"], counts["dead_jobs"]) == (4, 8, 3, 1)
    assert counts["leads"] == 5 and counts["alert_history"] == 3
    assert not Lead.objects.exists() and not Job.objects.exists()
    assert not any(default_storage.exists(name) for name in tangled)
