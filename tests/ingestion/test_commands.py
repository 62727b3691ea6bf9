"""ingest_probe and capture_ingestion_evidence: their numbers are the database's."""

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


def test_sample_probe_prints_one_json_line_matching_the_database():
    assert len(SAMPLE_LEADS) == 20
    assert probe() == {"added": 15, "duplicates": 3, "invalid": 2}
    leads = Lead.objects.filter(provider="probe", worker_id="probe")
    assert leads.filter(phone_e164__isnull=False).count() == 15 == LeadFingerprint.objects.count()
    assert leads.filter(phone_e164__isnull=True).count() == 2
    counter = IngestCounter.objects.get()
    assert (counter.added, counter.duplicates, counter.invalid) == (15, 3, 2)
    # The same day again: everything usable is already there.
    assert probe() == {"added": 0, "duplicates": 18, "invalid": 2}


def test_probe_json_file(tmp_path):
    path = tmp_path / "leads.json"
    path.write_text(json.dumps([{"name": "A", "phone": "0501234567", "lat": 24.1},
                                {"name": "B", "phone": "+966501234567"},
                                {"name": "C", "phone": "0551112222", "extra": {"k": 1}},
                                {"name": "D", "phone": "??"}], ensure_ascii=False), encoding="utf-8")
    assert probe("--file", str(path)) == {"added": 2, "duplicates": 1, "invalid": 1}


def test_probe_csv_file_with_header(tmp_path):
    path = tmp_path / "leads.csv"
    path.write_text("name,phone,city,lat,lng,rating,extra\n"
                    "مطعم,٠٥٠١٢٣٤٥٦٧,الرياض,24.7,46.7,4.5,\"{\"\"k\"\": 1}\"\n"
                    "مقهى,+966 50 123 4567,جدة,,,,\n"
                    "محل,,الدمام,,,,\n", encoding="utf-8-sig")
    assert probe("--file", str(path)) == {"added": 1, "duplicates": 1, "invalid": 1}
    stored = Lead.objects.get(phone_e164="+966501234567")
    assert (stored.lat, stored.rating, stored.extra, stored.city) == (24.7, 4.5, {"k": 1}, "الرياض")


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
    run("ingest_probe")  # earlier traffic today: the counters file must include it too
    output = run("capture_ingestion_evidence").strip().splitlines()
    folder = tmp_path / "logs" / "validation"
    assert output == [str(folder / "ingestion_probe.json"), str(folder / "usage_counters_today.json")]

    probe_file = json.loads((folder / "ingestion_probe.json").read_text(encoding="utf-8"))
    assert (probe_file["added"], probe_file["duplicates"], probe_file["invalid"]) == (0, 18, 2)
    assert probe_file["leads"] == 20
    assert probe_file["started_at"] <= probe_file["finished_at"]
    today = timezone.localdate()
    assert probe_file["local_day"] == today.isoformat()
    database = probe_file["database"]
    leads = Lead.objects.filter(provider="probe", local_day=today)
    assert database["leads_added_today"] == leads.filter(phone_e164__isnull=False).count() == 15
    assert database["leads_invalid_today"] == leads.filter(phone_e164__isnull=True).count() == 4
    assert database["fingerprints_of_probe_leads_today"] == LeadFingerprint.objects.count() == 15
    assert database["counters_today"]["duplicates"] == 3 + 18

    counters = json.loads((folder / "usage_counters_today.json").read_text(encoding="utf-8"))
    assert counters["day"] == today.isoformat()
    assert counters["totals"]["added"] == 15 == Lead.objects.filter(phone_e164__isnull=False).count()
    assert counters["totals"]["invalid"] == 4 == Lead.objects.filter(phone_e164__isnull=True).count()
    assert counters["totals"]["duplicates"] == sum(IngestCounter.objects.values_list("duplicates", flat=True))
    assert counters["by_provider"][0]["provider"] == "probe"
    assert counters["by_worker"][0]["worker_id"] == "probe"
    assert "captured_at" in counters
