"""Data-subject requests: export and erase a number given in any spelling, audited without the number."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from core.models import StaffAction
from ingestion.models import ErasureReceipt, Lead, LeadFingerprint, SuppressedPhone
from tests.clock import minute_start
from tests.ingestion.conftest import ingest, lead

pytestmark = pytest.mark.django_db

NUMBER = "+966501234567"
SPELLINGS = ["0501234567", "+966 50 123 4567", "00966501234567", "٠٥٠١٢٣٤٥٦٧", "۰۵۰ ۱۲۳ ۴۵۶۷"]
# What a scan looks for: the national significant number in ASCII, Arabic-Indic and Persian digits,
# and the spaced form a worker may have reported.
NEEDLES = ["501234567", "٥٠١٢٣٤٥٦٧", "۵۰۱۲۳۴۵۶۷", "50 123 4567", "۱۲۳ ۴۵۶۷"]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _text_columns() -> list[tuple[str, str]]:
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                kind = connection.introspection.get_field_type(column.type_code, column)
                if kind in {"CharField", "TextField", "JSONField"}:
                    found.append((table, column.name))
    return found


def database_rows_containing(needle: str) -> list[tuple[str, str]]:
    """Every (table, column) whose text holds `needle` anywhere, over every table of the database."""
    hits = []
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            qn = connection.ops.quote_name
            cursor.execute(f"SELECT count(*) FROM {qn(table)} WHERE CAST({qn(column)} AS TEXT) LIKE %s",
                           [f"%{needle}%"])
            if cursor.fetchone()[0]:
                hits.append((table, column))
    return hits


def _report_on_three_days():
    start = minute_start()
    for days, spelling in enumerate(SPELLINGS[:3]):
        with time_machine.travel(start.replace(hour=9) - dt.timedelta(days=2 - days),
                                 tick=False):
            ingest([lead("Subject", spelling, extra={"note": f"call {spelling}"}), lead("Other", "0551111111")])


def test_erase_in_any_spelling_leaves_the_number_nowhere_and_it_is_suppressed_afterwards(fixed_key):
    _report_on_three_days()
    ingest([lead("Also", "0552222222")])
    assert Lead.objects.filter(phone_e164=NUMBER).count() == 3
    other_leads = set(Lead.objects.exclude(phone_e164=NUMBER).values_list("id", flat=True))
    assert any(database_rows_containing("501234567"))

    output = run("privacy_erase", "--phone", "٠٥٠ ١٢٣ ٤٥٦٧", "--reason", "ticket 42")
    receipt = ErasureReceipt.objects.get()
    assert json.loads(output) == {"erased_leads": 3, "erased_fingerprints": 3, "suppressed": True,
                                  "receipt": receipt.pk}

    for needle in NEEDLES:
        assert database_rows_containing(needle) == [], needle
    assert set(Lead.objects.values_list("id", flat=True)) == other_leads
    assert LeadFingerprint.objects.count() == 4  # "Other" on three days + "Also"

    again = ingest([lead("Back", spelling) for spelling in SPELLINGS] + [lead("New", "0553333333")])
    assert (again.suppressed, again.added, again.duplicates) == (5, 1, 0)
    for needle in NEEDLES:
        assert database_rows_containing(needle) == [], needle
    audit = StaffAction.objects.get(action="privacy.erase")
    assert audit.detail["phone_masked"] == "+9665****4567" and len(audit.detail["phone_hmac"]) == 64
    assert audit.detail["reason"] == "ticket 42"


def test_erase_without_suppress_lets_the_number_be_collected_again(fixed_key):
    ingest([lead("Subject", "0501234567")])
    output = run("privacy_erase", "--phone", "00966501234567", "--reason", "r", "--no-suppress")
    assert json.loads(output) == {"erased_leads": 1, "erased_fingerprints": 1, "suppressed": False,
                                  "receipt": ErasureReceipt.objects.get().pk}
    assert not SuppressedPhone.objects.exists()
    assert ingest([lead("Subject", "0501234567")]).added == 1


def test_export_finds_every_lead_in_any_spelling_and_audits_masked(fixed_key):
    _report_on_three_days()
    data = json.loads(run("privacy_export", "--phone", "۰۵۰ ۱۲۳ ۴۵۶۷"))
    assert data["phone"] == NUMBER
    assert sorted(row["phone_raw"] for row in data["leads"]) == sorted(SPELLINGS[:3])
    assert len(data["fingerprints"]) == 3 and data["suppressed"] is None
    assert {row["name"] for row in data["leads"]} == {"Subject"}
    audit = StaffAction.objects.get(action="privacy.export")
    assert "501234567" not in json.dumps([audit.detail, audit.object_ids], ensure_ascii=False)
    assert audit.detail["leads"] == 3


@pytest.mark.parametrize(("command", "args"), [
    ("privacy_export", ["--phone", "not a number"]),
    ("privacy_erase", ["--phone", "12", "--reason", "r"]),
    ("privacy_erase", ["--phone", "0501234567", "--reason", " "]),
    ("suppression_add", ["--phone", "abc", "--reason", "r"]),
    ("suppression_add", ["--phone", "0501234567", "--reason", ""]),
    ("suppression_remove", ["--phone", ""]),
])
def test_bad_arguments_fail_with_one_line(fixed_key, command, args):
    with pytest.raises(CommandError) as error:
        call_command(command, *args)
    assert "\n" not in str(error.value)


def test_suppression_commands_round_trip(fixed_key):
    assert run("suppression_add", "--phone", "0501234567", "--reason", "opt-out").strip() == "suppressed +9665****4567"
    assert ingest([lead("A", "+966501234567")]).suppressed == 1
    assert run("suppression_remove", "--phone", "٠٥٠١٢٣٤٥٦٧").strip() == "removed +9665****4567"
    assert ingest([lead("A", "+966501234567")]).added == 1
