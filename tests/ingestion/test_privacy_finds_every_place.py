"""Export and erasure find a number wherever it is stored: planted in each place, in several spellings.

The places are docs/PRIVACY.md's list ("What a request searches"): another lead's name, address and
`extra`, an invalid-phone lead's raw phone, a job payload, a job's last error, an attempt's error and
its log tail (stored masked).
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from core.audit import Actor
from core.models import StaffAction
from ingestion.models import Lead
from ingestion.privacy import privacy_erase
from queueing.models import Job, JobAttempt
from tests.factories import make_jobs
from tests.ingestion.conftest import ingest, lead
from tests.ingestion.test_privacy import database_rows_containing

pytestmark = pytest.mark.django_db

NUMBER = "+966501234567"
MASKED = "+9665****4567"
# Every place, each with the number in another spelling.
PLANTED = {
    "ingestion.lead.name": "٠٥٠١٢٣٤٥٦٧",
    "ingestion.lead.address": "+966 50 123 4567",
    "ingestion.lead.extra": "00966501234567",
    "ingestion.lead.phone_raw": "0501234567 / 0501234568",  # two numbers: not usable, stored invalid
    "queueing.job.payload": "۰۵۰ ۱۲۳ ۴۵۶۷",
    "queueing.job.last_error": "966-50-123-4567",
    "queueing.attempt.error": "0501234567",
    "queueing.attempt.log_tail": "(050) 123-4567",
}
NEEDLES = ["501234567", "٥٠١٢٣٤٥٦٧", "۵۰۱۲۳۴۵۶۷", "50 123 4567", "۱۲۳ ۴۵۶۷", "123-4567"]
# The audit trail and the suppression list keep the masked form on purpose (docs/PRIVACY.md, "Requests").
KEEPS_THE_MASK = {("core_staffaction", "detail"), ("ingestion_suppressedphone", "phone_masked"),
                  ("ingestion_erasurereceipt", "phone_masked")}


@pytest.fixture
def planted(signed):
    """The number written once in every place, through the real paths where there is one."""
    ingest([
        lead(f"Cafe {PLANTED['ingestion.lead.name']}", "0551111111"),
        lead("Shop", "0552222222", address=f"Olaya st., call {PLANTED['ingestion.lead.address']}"),
        lead("Bakery", "0553333333", extra={"contacts": [{"mobile": PLANTED["ingestion.lead.extra"]}]}),
        lead("Unreadable", PLANTED["ingestion.lead.phone_raw"]),
    ])
    assert Lead.objects.get(name="Unreadable").phone_e164 is None
    job = make_jobs(1, payload={"query": f"owner {PLANTED['queueing.job.payload']}", "city": "Riyadh"})[0]
    claim = signed.pull(1).json()["jobs"][0]
    answer = signed.report(claim["id"], {
        "attempt_id": claim["attempt_id"], "outcome": "failed", "leads": [],
        "error": {"code": "blocked", "message": f"captcha for {PLANTED['queueing.attempt.error']}",
                  "retryable": True},
        "log_tail": f"dialing {PLANTED['queueing.attempt.log_tail']}\nno answer",
    })
    assert answer.status_code == 200, answer.content
    Job.objects.filter(pk=job.pk).update(
        last_error={"code": "blocked", "message": f"site showed {PLANTED['queueing.job.last_error']}"})
    attempt = JobAttempt.objects.get(job=job)
    assert MASKED in attempt.log_tail  # the log tail is stored masked
    return job


def export() -> dict:
    out = io.StringIO()
    call_command("privacy_export", "--phone", "٠٥٠ ١٢٣ ٤٥٦٧", stdout=out)
    return json.loads(out.getvalue())


def test_export_finds_the_number_in_every_place(planted):
    data = export()
    where = {mention["where"] for mention in data["mentions"]}
    assert where == set(PLANTED) - {"ingestion.lead.phone_raw"}
    # The invalid lead whose raw phone holds the number is the number's own lead: exported whole.
    assert [row["name"] for row in data["leads"]] == ["Unreadable"]
    log_tail = next(m for m in data["mentions"] if m["where"] == "queueing.attempt.log_tail")
    assert log_tail["masked_only"] is True and MASKED in log_tail["text"]
    assert StaffAction.objects.get(action="privacy.export").detail["leads"] == 1


def test_erase_leaves_the_number_nowhere_in_any_spelling_masked_or_not(planted):
    assert database_rows_containing("501234567")
    result = privacy_erase(phone="0501234567", reason="ticket 7", actor=Actor.command("test"))
    assert result["erased_leads"] == 1  # the unreadable lead
    assert result["redacted_mentions"] == len(PLANTED) - 1
    for needle in NEEDLES:
        assert database_rows_containing(needle) == [], needle
    assert set(database_rows_containing(MASKED)) <= KEEPS_THE_MASK
    # The other leads stay, with the mention replaced; their own numbers and normalized keys follow.
    cafe = Lead.objects.get(phone_e164="+966551111111")
    assert cafe.name == "Cafe [erased]" and "0" not in cafe.name_normalized
    assert Lead.objects.get(phone_e164="+966553333333").extra == {"contacts": [{"mobile": "[erased]"}]}
    assert Job.objects.get(pk=planted.pk).payload == {"query": "owner [erased]", "city": "Riyadh"}
    assert export()["mentions"] == []
    assert StaffAction.objects.get(action="privacy.erase").detail["redacted_mentions"] == len(PLANTED) - 1
