"""purge_retention: with the clock frozen, every class loses exactly its expired rows, and one audit row
says how many per class."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Silence
from core.models import RateLimitState, StaffAction
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from leadops.models import DataClass, MonitorEvent, RetentionPolicy
from leadops.retention import default_days, retention_policies_ensure
from leadops.schedules import PERIODIC_TASKS
from queueing.models import AttemptEvidence, BreakerTransition, Job, JobState, ReportReceipt
from tests.factories import make_jobs
from tests.ingestion.conftest import ingest, lead
from tests.leadops.conftest import purge_retention
from workers_mgmt.models import CredentialEvent, CredentialEventKind, RequestNonce

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


@pytest.fixture
def aged(clock, settings, tmp_path):
    """Rows of every class just past and just inside their default retention (frozen now)."""
    settings.LEADOPS_FINGERPRINT_KEY = "k"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    now = timezone.now()
    # Leads 365 days: per-day dedup; days counted in local days.
    ingest([lead("old", "0500000001")], received_at=now - 367 * DAY)
    ingest([lead("kept", "0500000002"), lead("bad", "x")], received_at=now - 363 * DAY)
    # Per-day fingerprints: expired after a grace of 2 local days.
    ingest([lead("fp-old", "0500000003")], received_at=now - 4 * DAY)
    ingest([lead("fp-new", "0500000004")], received_at=now - 1 * DAY)
    # Cross-day fingerprints live as long as their leads (365 days by created_at).
    settings.LEADOPS_DEDUP_SCOPE = "all"
    ingest([lead("all-old", "0500000005")], received_at=now - 367 * DAY)
    ingest([lead("all-new", "0500000006")], received_at=now - 363 * DAY)
    settings.LEADOPS_DEDUP_SCOPE = "day"
    # Counters 730 days (the ingests above made counters inside it).
    IngestCounter.objects.create(hour=now - 731 * DAY, local_day=(now - 731 * DAY).date(), provider="p",
                                 worker_id="w", added=1)
    # Finished jobs (attempts) 30 days; dead jobs 30 days; one queued job stays whatever its age.
    jobs = make_jobs(5)
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.SUCCEEDED, finished_at=now - 31 * DAY)
    Job.objects.filter(pk=jobs[1].pk).update(state=JobState.SUCCEEDED, finished_at=now - 29 * DAY)
    Job.objects.filter(pk=jobs[2].pk).update(state=JobState.DEAD, finished_at=now - 31 * DAY)
    Job.objects.filter(pk=jobs[3].pk).update(state=JobState.DEAD, finished_at=now - 29 * DAY)
    # Receipts: 2 days (never under the 48 h idempotency window).
    for age in (3, 1):
        ReportReceipt.objects.create(worker_id="w", idempotency_key=f"k{age}", request_hash="h", job=jobs[1],
                                     response={}, created_at=now - age * DAY)
    for age in (91, 89):
        BreakerTransition.objects.create(scope="provider", key="maps", from_state="closed", to_state="open",
                                         reason="r", at=now - age * DAY)
    for age in (2, 0.5):
        RequestNonce.objects.create(worker_id="w", nonce=f"n{age}", seen_at=now - age * DAY)
    RateLimitState.objects.create(key="spent", tat=(now - dt.timedelta(seconds=5)).timestamp())
    RateLimitState.objects.create(key="live", tat=(now + dt.timedelta(seconds=5)).timestamp())
    for age, kind in ((31, CredentialEventKind.AUTH_FAILED), (29, CredentialEventKind.AUTH_FAILED),
                      (366, CredentialEventKind.CREATED), (364, CredentialEventKind.CREATED)):
        CredentialEvent.objects.create(worker_id="w", kind=kind, created_at=now - age * DAY)
    for age in (8, 6):
        MonitorEvent.objects.create(type="t", at=now - age * DAY, data={})
    for age in (731, 729):
        StaffAction.objects.create(created_at=now - age * DAY, actor_name="a", source="command", action="x",
                                   object_type="t")
    for age in (15, 13):
        name = default_storage.save(f"evidence/test/{age}.png", ContentFile(b"png"))
        AttemptEvidence.objects.create(storage_name=name, content_type="image/png", size=3, sha256="0" * 64,
                                       width=1, height=1, created_at=now - age * DAY)
    for age in (31, 29):
        Silence.objects.create(matchers=[], starts_at=now - 40 * DAY, ends_at=now - age * DAY, created_by="a",
                               comment="c")
    return now


EXPECTED = {
    "leads": 2, "fingerprints": 4, "counters": 1, "attempts": 1, "receipts": 1, "dead_jobs": 1,
    "breaker_audit": 1, "nonces": 1, "rate_limit_states": 1, "auth_failures": 1, "credential_audit": 1,
    "monitor_events": 1, "staff_audit": 1, "alert_history": 1, "evidence": 1,
}


def test_every_class_loses_exactly_its_expired_rows(aged):
    retention_policies_ensure()
    assert set(EXPECTED) == set(DataClass.values) == set(RetentionPolicy.objects.values_list("data_class",
                                                                                             flat=True))
    before = {"leads": Lead.objects.count(), "fingerprints": LeadFingerprint.objects.count()}
    dry = purge_retention("--dry-run")
    assert dry == {"dry_run": True, "counts": EXPECTED}
    assert Lead.objects.count() == before["leads"]

    assert purge_retention() == {"dry_run": False, "counts": EXPECTED}
    assert sorted(Lead.objects.values_list("name", flat=True)) == ["all-new", "bad", "fp-new", "fp-old", "kept"]
    scopes = sorted(LeadFingerprint.objects.values_list("scope", flat=True))
    # Only fp-new's day (inside the grace) and all-new's cross-day fingerprint are left.
    assert scopes.count("all") == 1 and len(scopes) == 2
    assert Job.objects.count() == 3 and not Job.objects.filter(finished_at__lt=aged - 30 * DAY).exists()
    assert list(ReportReceipt.objects.values_list("idempotency_key", flat=True)) == ["k1"]
    assert list(RateLimitState.objects.values_list("key", flat=True)) == ["live"]
    assert CredentialEvent.objects.count() == 2 and MonitorEvent.objects.filter(type="t").count() == 1
    assert Silence.objects.count() == 1 and BreakerTransition.objects.count() == 1
    # Evidence 14 days: the old screenshot's row and its stored file are gone, the newer one stays.
    assert list(AttemptEvidence.objects.values_list("storage_name", flat=True)) == ["evidence/test/13.png"]
    assert not default_storage.exists("evidence/test/15.png") and default_storage.exists("evidence/test/13.png")

    audits = StaffAction.objects.filter(action__startswith="retention.").order_by("id")
    assert [a.action for a in audits] == ["retention.purge_dry_run", "retention.purge"]
    assert audits[1].detail["counts"] == EXPECTED and audits[1].actor_name == "command:purge_retention"
    # A second run finds nothing more to do.
    assert set(purge_retention()["counts"].values()) == {0}


def test_policy_edits_apply_and_blank_keeps_a_class_forever(aged):
    retention_policies_ensure()
    RetentionPolicy.objects.filter(data_class=DataClass.LEADS).update(days=None)
    RetentionPolicy.objects.filter(data_class=DataClass.STAFF_AUDIT).update(days=1)
    counts = purge_retention()["counts"]
    assert counts["leads"] is None and Lead.objects.filter(name="old").exists()
    # Cross-day fingerprints follow their leads: kept forever too.
    assert LeadFingerprint.objects.filter(scope="all").count() == 2
    assert counts["staff_audit"] == 2


def test_defaults_follow_the_settings_they_replace(settings):
    settings.LEADOPS_JOB_RETENTION_DAYS = 12
    settings.LEADOPS_AUTH_FAILURE_RETENTION_DAYS = 9
    assert default_days()["attempts"] == 12 and default_days()["auth_failures"] == 9


def test_a_daily_schedule_runs_it():
    assert ("retention: purge expired data", "leadops.tasks.purge_retention", 1440) in PERIODIC_TASKS


def test_without_json_it_prints_one_line_per_class_and_no_progress_bar_off_a_terminal(aged):
    retention_policies_ensure()
    RetentionPolicy.objects.filter(data_class=DataClass.COUNTERS).update(days=None)
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_retention", "--dry-run", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(DataClass.values)
    assert "leads                would delete 2" in lines and "counters             kept forever" in lines
    assert err.getvalue() == "" and Lead.objects.filter(name="old").exists()
