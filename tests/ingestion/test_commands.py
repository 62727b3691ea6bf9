"""ingest_probe and capture_ingestion_evidence: their numbers are the database's, and they leave none of it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.probe import SAMPLE_LEADS
from ingestion.schema import parse_lead_rows
from ingestion.services import lead_batch_ingest
from tests.factories import lead

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def probe(*args: str) -> dict:
    output = run("ingest_probe", *args)
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return json.loads(lines[0])


def test_sample_probe_prints_one_json_line_and_leaves_nothing_behind():
    assert len(SAMPLE_LEADS) == 20
    assert probe() == {"added": 15, "duplicates": 3, "invalid": 2, "suppressed": 0}
    assert (Lead.objects.count(), LeadFingerprint.objects.count(), IngestCounter.objects.count()) == (0, 0, 0)
    # The same day again: the same answer, nothing of the first run is there to collide with.
    assert probe() == {"added": 15, "duplicates": 3, "invalid": 2, "suppressed": 0}


def test_probe_json_file(tmp_path):
    path = tmp_path / "leads.json"
    path.write_text(json.dumps([{"name": "A", "phone": "0501234567", "lat": 24.1},
                                {"name": "B", "phone": "+966501234567"},
                                {"name": "C", "phone": "0551112222", "extra": {"k": 1}},
                                {"name": "D", "phone": "??"}], ensure_ascii=False), encoding="utf-8")
    assert probe("--file", str(path)) == {"added": 2, "duplicates": 1, "invalid": 1, "suppressed": 0}


def test_probe_csv_file_with_header(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("name,phone,city,lat,lng,rating,extra\n"
                    "مطعم,٠٥٠١٢٣٤٥٦٧,الرياض,24.7,46.7,4.5,\"{\"\"k\"\": 1}\"\n"
                    "مقهى,+966 50 123 4567,جدة,,,,\n"
                    "محل,,الدمام,,,,\n", encoding="utf-8-sig")
    assert probe("--file", str(path)) == {"added": 1, "duplicates": 1, "invalid": 1, "suppressed": 0}


@pytest.mark.parametrize(("content", "message"), [
    ("[{\"name\": \"a\"", "not valid JSON"),
    ("{\"name\": \"a\", \"phone\": \"1\"}", "JSON array"),
    ("[{\"name\": 1, \"phone\": \"1\"}]", "leads[0].name"),
    ("city,lat\nx,1\n", "name and phone"),
    ("name,phone,lat\na,1,north\n", "lat is not a number"),
    ("", "no header"),
])
def test_bad_file_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError) as info:
        run("ingest_probe", "--file", str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert Lead.objects.count() == 0


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("ingest_probe", "--file", str(tmp_path / "nope.json"))


def test_bad_file_exits_non_zero_with_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[1, 2", encoding="utf-8")
    done = subprocess.run([sys.executable, "manage.py", "ingest_probe", "--file", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_capture_ingestion_evidence_writes_files_that_match_the_database(settings, tmp_path):
    settings.STORAGE_DIR = tmp_path
    # Earlier real traffic today: the counters file holds it, and the probe is not added to it.
    lead_batch_ingest(rows=parse_lead_rows([lead("Real", "0501234567"), lead("No phone", "")], max_leads=10),
                      provider="maps", worker_id="w1")
    output = run("capture_ingestion_evidence").strip().splitlines()
    folder = tmp_path / "logs" / "validation"
    assert output == [str(folder / "ingestion_probe.json"), str(folder / "usage_counters_today.json")]

    probe_file = json.loads((folder / "ingestion_probe.json").read_text(encoding="utf-8"))
    assert (probe_file["added"], probe_file["duplicates"], probe_file["invalid"], probe_file["suppressed"]) == (
        15, 3, 2, 0)
    assert probe_file["leads"] == 20
    assert probe_file["started_at"] <= probe_file["finished_at"]
    today = timezone.localdate()
    assert probe_file["local_day"] == today.isoformat()
    assert probe_file["dedup_scope"] == "probe" and probe_file["real_dedup_scope"] == today.isoformat()
    database = probe_file["database"]
    assert database["leads_added_today"] == 15 and database["leads_invalid_today"] == 2
    assert database["fingerprints_of_probe_leads_today"] == 15
    assert database["counters_today"]["duplicates"] == 3
    assert probe_file["rolled_back"] is True and probe_file["left_behind"] == 0
    assert not Lead.objects.filter(provider="probe").exists()

    counters = json.loads((folder / "usage_counters_today.json").read_text(encoding="utf-8"))
    assert counters["day"] == today.isoformat()
    assert counters["totals"]["added"] == 1 == Lead.objects.filter(phone_e164__isnull=False).count()
    assert counters["totals"]["invalid"] == 1 == Lead.objects.filter(phone_e164__isnull=True).count()
    assert [row["provider"] for row in counters["by_provider"]] == ["maps"]
    assert [row["worker_id"] for row in counters["by_worker"]] == ["w1"]
    assert "captured_at" in counters
