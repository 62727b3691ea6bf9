"""`/metrics` counts suppressed leads (`leadops_leads{outcome="suppressed"}`) as the report and the counters do."""

from __future__ import annotations

import pytest
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from core.audit import Actor
from ingestion.models import IngestCounter
from ingestion.privacy import suppression_add
from tests.factories import lead, make_jobs

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests-0123456789"


def test_metrics_count_suppressed_leads_like_the_report_and_the_hourly_counters(client, settings, signed):
    settings.LEADOPS_METRICS_TOKEN = TOKEN
    suppression_add(phone="0550000001", reason="opt-out", actor=Actor.command("test"))
    make_jobs(1)
    claim = signed.pull(1).json()["jobs"][0]
    rows = [lead("Opted out", "0550000001"), lead("Again", "+966550000001"), lead("Kept", "0501234567")]
    answer = signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": rows})
    assert answer.status_code == 200
    assert answer.json()["added"] == 1

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    leads = {sample.labels["outcome"]: sample.value
             for family in text_string_to_metric_families(response.content.decode())
             for sample in family.samples if sample.name == "leadops_leads_total"}
    hourly = IngestCounter.objects.aggregate(suppressed=Sum("suppressed"), added=Sum("added"))
    assert leads["suppressed"] == hourly["suppressed"] == 2
    assert leads["added"] == hourly["added"] == 1
    assert set(leads) == {"added", "duplicates", "invalid", "suppressed"}
