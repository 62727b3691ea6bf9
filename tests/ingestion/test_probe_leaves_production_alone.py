"""The probe goes through the real ingest path but no real lead, fingerprint or counter ever sees it."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.audit import Actor
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.privacy import suppression_add
from ingestion.probe import SAMPLE_LEADS, probe_run
from ingestion.schema import parse_lead_rows
from ingestion.selectors import ingestion_telemetry
from ingestion.services import lead_batch_ingest
from tests.factories import lead

pytestmark = pytest.mark.django_db


def real_report(*rows: dict) -> tuple[int, int]:
    result = lead_batch_ingest(rows=parse_lead_rows(list(rows), max_leads=10), provider="maps", worker_id="w1")
    return result.added, result.duplicates


def table_state() -> tuple:
    return (sorted(Lead.objects.values_list("pk", "phone_e164", "provider")),
            sorted(LeadFingerprint.objects.values_list("fingerprint", "scope", "lead_id")),
            sorted(IngestCounter.objects.values_list("provider", "worker_id", "added", "duplicates", "invalid")))


def test_a_real_lead_after_the_probe_with_the_same_number_is_added_not_dropped():
    outcome = probe_run(raw_rows=SAMPLE_LEADS)
    assert (outcome.result.added, outcome.left_behind) == (15, 0)
    # 0501234567 is the sample's first number: a real worker reporting it today adds it.
    assert real_report(lead("Al Baik", "0501234567")) == (1, 0)


def test_the_probe_counts_the_same_whatever_real_leads_hold_its_numbers():
    assert real_report(lead("Al Baik", "+966501234567"), lead("Nahdi", "0551234567")) == (2, 0)
    outcome = probe_run(raw_rows=SAMPLE_LEADS)
    assert (outcome.result.added, outcome.result.duplicates, outcome.result.invalid) == (15, 3, 2)


def test_the_probe_leaves_tables_and_telemetry_exactly_as_they_were():
    real_report(lead("Al Baik", "0501234567"), lead("No phone", ""))
    now = timezone.now()
    before, telemetry = table_state(), ingestion_telemetry(now=now)
    outcome = probe_run(raw_rows=SAMPLE_LEADS)
    assert outcome.database["leads_added_today"] == 15  # it was really stored, inside its run
    assert table_state() == before
    assert ingestion_telemetry(now=now) == telemetry


def test_probe_output_counts_suppressed_numbers():
    suppression_add(phone="0501234567", reason="opt-out", actor=Actor.command("test"))
    out = io.StringIO()
    call_command("ingest_probe", stdout=out)
    # The sample holds that number twice (0501234567 and +966501234567): both are suppressed.
    assert json.loads(out.getvalue()) == {"added": 14, "duplicates": 2, "invalid": 2, "suppressed": 2}
