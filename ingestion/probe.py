"""The ingestion probe: push a known set of leads through the real ingest path and report the counts.

Used by `ingest_probe` (operators checking a deployment) and `capture_ingestion_evidence`. The
leads come from a file (a JSON array in the protocol's lead shape, or CSV with a header row) or
from a built-in sample of Saudi leads that holds in-batch duplicates and unusable phones on purpose.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ingestion.models import Lead, LeadFingerprint
from ingestion.schema import LeadValidationError, parse_lead_rows
from ingestion.selectors import probe_database_check
from ingestion.services import EMPTY_RESULT, IngestResult, lead_batch_ingest

PROBE_PROVIDER = "probe"
PROBE_WORKER = "probe"
# The probe's own fingerprint scope: a real lead's scope is a local date or "all", so no probe
# fingerprint can ever equal a real one (the scope is inside the HMAC).
PROBE_SCOPE = "probe"
MAX_PROBE_LEADS = 100_000
_CSV_NUMBERS = ("lat", "lng", "rating")

# Twenty leads: fifteen distinct numbers in the formats workers send, three repeats of them in other
# formats (in-batch duplicates), and two phones that are not usable (invalid). Every run, whatever
# production holds: added 15, duplicates 3, invalid 2 (suppressed numbers aside).
SAMPLE_LEADS: list[dict[str, Any]] = [
    {"name": "مطعم البيك", "phone": "0501234567", "city": "جدة", "category": "مطاعم",
     "lat": 21.54, "lng": 39.17},
    {"name": "صيدلية النهدي", "phone": "+966 55 123 4567", "city": "الرياض", "category": "صيدليات"},
    {"name": "مقهى الشرفة", "phone": "00966541234567", "city": "الدمام", "rating": 4.4},
    {"name": "Al Baik Restaurant", "phone": "966561234567", "city": "Makkah", "website": "https://example.com"},
    {"name": "مستشفى المملكة", "phone": "٠١١٤٦٤٠٠٠٠", "city": "الرياض", "category": "مستشفيات"},
    {"name": "مخبز الأصالة", "phone": "۰۵۳۱۲۳۴۵۶۷", "city": "المدينة المنورة"},
    {"name": "ورشة الخليج", "phone": "tel:+966-58-123-4567", "city": "الخبر", "category": "ورش سيارات"},
    {"name": "مكتبة جرير", "phone": "920000089", "city": "الرياض", "source_url": "https://maps.example/place/1"},
    {"name": "Saudi Telecom", "phone": "800 124 0000", "city": "Riyadh", "category": "Telecom"},
    {"name": "محل الزهور", "phone": "(059) 123-4567", "city": "أبها"},
    {"name": "صالون الأناقة", "phone": "+966 (0) 57 123 4567", "city": "تبوك"},
    {"name": "Jeddah Clinic", "phone": "012 234 5678", "city": "Jeddah", "extra": {"hours": "9-21"}},
    {"name": "مغسلة النظافة", "phone": "+9660511234567", "city": "حائل"},
    {"name": "Gulf Trading (Dubai)", "phone": "+971 4 123 4567", "city": "Dubai"},
    {"name": "صيدلية الدواء", "phone": "05٠٢٢٢٣٣٣٣", "city": "بريدة"},
    # Repeats of numbers above, written differently: in-batch duplicates.
    {"name": "مطعم البيك - فرع 2", "phone": "+966501234567", "city": "جدة"},
    {"name": "صيدلية النهدي", "phone": "٠٥٥١٢٣٤٥٦٧", "city": "الرياض"},
    {"name": "مقهى الشرفة", "phone": "054-123-4567", "city": "الدمام"},
    # Unusable phones: stored flagged, counted as invalid.
    {"name": "متجر بدون رقم", "phone": "", "city": "الطائف"},
    {"name": "Unknown shop", "phone": "call us", "city": "Najran"},
]


class ProbeFileError(ValueError):
    """The probe file cannot be read as leads; the message is one line for the operator."""


@dataclass(frozen=True)
class ProbeOutcome:
    result: IngestResult
    leads: int
    started_at: dt.datetime
    finished_at: dt.datetime
    # What the tables held for the probe just before its rows were rolled back, and what is left.
    database: dict[str, Any]
    left_behind: int


def _csv_rows(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ProbeFileError("the CSV file has no header row")
    header = [name.strip().lower() for name in reader.fieldnames]
    if "phone" not in header or "name" not in header:
        raise ProbeFileError("the CSV header must name at least the columns name and phone")
    rows: list[dict[str, Any]] = []
    for line_no, record in enumerate(reader, start=2):
        row: dict[str, Any] = {}
        for key, value in zip(header, (record.get(name) for name in reader.fieldnames), strict=True):
            if value is None or (value == "" and key not in ("name", "phone")):
                continue
            if key in _CSV_NUMBERS:
                try:
                    row[key] = float(value)
                except ValueError:
                    raise ProbeFileError(f"line {line_no}: {key} is not a number") from None
            elif key == "extra":
                try:
                    row[key] = json.loads(value)
                except json.JSONDecodeError:
                    raise ProbeFileError(f"line {line_no}: extra is not JSON") from None
            else:
                row[key] = value
        rows.append(row)
    return rows


def probe_file_rows(path: Path) -> list[dict[str, Any]]:
    """Read the leads of a probe file: a JSON array of lead objects, or CSV with a header row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ProbeFileError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeFileError(f"cannot read {path}: {exc.__class__.__name__}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProbeFileError(f"{path.name} is not valid JSON (line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise ProbeFileError(f"{path.name} must hold a JSON array of leads")
        return rows
    return _csv_rows(text)


def probe_run(*, raw_rows: list[Any], received_at: dt.datetime | None = None) -> ProbeOutcome:
    """Validate the rows like a report, ingest them as provider "probe", worker "probe", then undo it.

    Rows go in batches of the report limit, as a worker would send them, through the real ingest
    statements, in one transaction under the probe's own fingerprint scope; the transaction is rolled
    back at the end, so no probe lead, fingerprint or counter outlives the run, a real lead with the
    same number is never a duplicate of a probe lead, and the telemetry never sees the probe
    (docs/RUNBOOK.md, "ingest_probe").
    """
    if len(raw_rows) > MAX_PROBE_LEADS:
        raise ProbeFileError(f"at most {MAX_PROBE_LEADS} leads per probe")
    batch_size = settings.LEADOPS_MAX_LEADS_PER_REPORT
    try:
        leads = parse_lead_rows(raw_rows, max_leads=MAX_PROBE_LEADS)
    except LeadValidationError as exc:
        field, problems = next(iter(exc.fields.items()))
        raise ProbeFileError(f"{field}: {problems[0]}") from None
    started_at = timezone.now()
    totals = EMPTY_RESULT.as_dict()
    with transaction.atomic():
        last_before = Lead.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for start in range(0, len(leads), batch_size):
            result = lead_batch_ingest(
                rows=leads[start:start + batch_size], provider=PROBE_PROVIDER, worker_id=PROBE_WORKER,
                received_at=received_at, scope=PROBE_SCOPE,
            )
            for key, value in result.as_dict().items():
                totals[key] += value
        finished_at = timezone.now()
        database = probe_database_check(now=received_at or finished_at)
        # The run is over: its counts are taken, its rows go.
        transaction.set_rollback(True)
    run_leads = Lead.objects.filter(pk__gt=last_before, provider=PROBE_PROVIDER, worker_id=PROBE_WORKER)
    left_behind = (run_leads.count()
                   + LeadFingerprint.objects.filter(scope=PROBE_SCOPE).count())
    return ProbeOutcome(result=IngestResult(**totals), leads=len(leads), started_at=started_at,
                        finished_at=finished_at, database=database, left_behind=left_behind)
