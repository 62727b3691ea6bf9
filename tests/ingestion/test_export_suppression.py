"""A suppressed number leaves the portal in no lead export (admin CSV / JSONL, `leads_export`), in no
spelling, and every export says how many leads it left out."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse

from core.audit import Actor
from core.models import StaffAction
from ingestion.models import Lead
from ingestion.privacy import suppression_add
from tests.ingestion.conftest import ingest, lead

pytestmark = pytest.mark.django_db

# The suppressed number in every spelling a file could hold it: +966..., 05..., 9665..., 00966...,
# spaced, Arabic-Indic and Persian digits. "501234567" is inside each ASCII form.
NEEDLES = ["501234567", "50 123 4567", "٥٠١٢٣٤٥٦٧", "۵۰۱۲۳۴۵۶۷"]


@pytest.fixture
def leads_and_a_suppressed_number(db):
    ingest([
        lead("Subject", "0501234567"),
        lead("Subject again", "+966 50 123 4567", city="Jeddah"),  # another day's spelling, same number
        lead("Cafe, owner on 00966501234567", "0551111111"),
        lead("Shop", "0552222222", extra={"contacts": ["٠٥٠١٢٣٤٥٦٧", "0553333333"]}),
        lead("Bakery", "9665 0123 4568"),
    ])
    assert Lead.objects.filter(phone_e164="+966501234567").count() >= 1
    suppression_add(phone="966501234567", reason="opt-out", actor=Actor.command("tests"))
    return list(Lead.objects.values_list("pk", flat=True))


def admin_export(client, action: str, ids: list[int]) -> tuple[str, str]:
    response = client.post(reverse("admin:ingestion_lead_changelist"),
                           {"action": action, "_selected_action": [str(pk) for pk in ids], "post": "yes"})
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode(), response["X-LeadOps-Suppressed-Left-Out"]


def left_out(body: str) -> bool:
    return all(needle not in body for needle in NEEDLES)


@pytest.mark.parametrize("action", ["export_csv", "export_jsonl"])
def test_an_admin_export_leaves_the_suppressed_number_out_and_says_how_many(
        admin_client, leads_and_a_suppressed_number, action):
    own = Lead.objects.filter(phone_e164="+966501234567").count()
    body, count = admin_export(admin_client, action, leads_and_a_suppressed_number)
    assert left_out(body), body
    assert int(count) == own
    # The other leads are all there, a mention of the number replaced; other numbers untouched.
    for kept in ("+966551111111", "+966552222222", "0553333333", "Cafe, owner on [suppressed]", "+966501234568"):
        assert kept in body, kept
    audit = StaffAction.objects.get(action="leads.export")
    assert audit.detail["left_out_suppressed"] == own
    assert audit.object_count == len(leads_and_a_suppressed_number) - own


def test_a_masked_export_leaves_it_out_too(client, leads_and_a_suppressed_number):
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["export_lead", "view_lead"]))
    client.force_login(user)
    body, count = admin_export(client, "export_csv", leads_and_a_suppressed_number)
    assert left_out(body) and "+9665****4567" not in body and int(count) >= 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_leads_export_command_leaves_it_out_and_reports_the_count(leads_and_a_suppressed_number, fmt, tmp_path):
    own = Lead.objects.filter(phone_e164="+966501234567").count()
    out, err = io.StringIO(), io.StringIO()
    call_command("leads_export", "--format", fmt, stdout=out, stderr=err)
    body = out.getvalue()
    assert left_out(body) and "+966551111111" in body
    assert f"left out {own} with a suppressed number" in err.getvalue()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in body.splitlines()]
        assert len(rows) == len(leads_and_a_suppressed_number) - own
    assert StaffAction.objects.get(action="leads.export").detail["left_out_suppressed"] == own
    target = tmp_path / f"leads.{fmt}"
    call_command("leads_export", "--format", fmt, "--out", str(target), stdout=io.StringIO(), stderr=io.StringIO())
    assert left_out(target.read_text(encoding="utf-8"))


def test_an_export_without_suppressions_is_unchanged_and_counts_zero(admin_client, db):
    ingest([lead("Subject", "0501234567")])
    body, count = admin_export(admin_client, "export_csv", list(Lead.objects.values_list("pk", flat=True)))
    assert "+966501234567" in body and count == "0"
