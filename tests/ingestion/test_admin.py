"""Lead admin: phone search in any format, filters, streaming exports behind a permission; read-only admins."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.http import StreamingHttpResponse

from ingestion.models import IngestCounter, Lead, LeadFingerprint
from tests.ingestion.conftest import ingest, lead

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/ingestion/lead/"


@pytest.fixture
def leads():
    ingest([lead("مَطْعَمُ البَيْك", "0501234567", city="جدة"), lead("Cafe Riyadh", "0551112222", city="الرياض"),
            lead("=HYPERLINK(\"x\")", "junk", city="الدمام")], provider="maps", worker_id="w-1")
    ingest([lead("Yellow shop", "0112345678", city="الرياض")], provider="yellow", worker_id="w-2")


def result_names(response) -> set[str]:
    return {obj.name for obj in response.context["cl"].result_list}


@pytest.mark.parametrize("query", ["0501234567", "+966 50 123 4567", "00966501234567", "٠٥٠١٢٣٤٥٦٧",
                                   "tel:+966-50-123-4567", "(050) 123-4567"])
def test_search_by_a_phone_in_any_format(admin_client, leads, query):
    response = admin_client.get(CHANGELIST, {"q": query})
    assert response.status_code == 200
    assert result_names(response) == {"مَطْعَمُ البَيْك"}


def test_search_by_name_ignores_diacritics_and_case(admin_client, leads):
    assert result_names(admin_client.get(CHANGELIST, {"q": "مطعم البيك"})) == {"مَطْعَمُ البَيْك"}
    assert result_names(admin_client.get(CHANGELIST, {"q": "CAFE"})) == {"Cafe Riyadh"}


def test_filters(admin_client, leads):
    assert result_names(admin_client.get(CHANGELIST, {"provider": "yellow"})) == {"Yellow shop"}
    assert result_names(admin_client.get(CHANGELIST, {"worker_id": "w-1"})) == {
        "مَطْعَمُ البَيْك", "Cafe Riyadh", "=HYPERLINK(\"x\")"}
    assert result_names(admin_client.get(CHANGELIST, {"city": "الرياض"})) == {"Cafe Riyadh", "Yellow shop"}
    assert result_names(admin_client.get(CHANGELIST, {"phone_valid__exact": "0"})) == {"=HYPERLINK(\"x\")"}
    assert result_names(admin_client.get(CHANGELIST, {"phone_type__exact": "fixed_line"})) == {"Yellow shop"}
    assert len(result_names(admin_client.get(CHANGELIST, {"day": "today"}))) == 4
    assert result_names(admin_client.get(CHANGELIST, {"day": "yesterday"})) == set()


def export(client, action: str, **extra) -> StreamingHttpResponse:
    ids = list(Lead.objects.values_list("pk", flat=True))
    return client.post(CHANGELIST, {"action": action, "_selected_action": ids, **extra})


def test_export_csv_streams_every_selected_lead(admin_client, leads):
    response = export(admin_client, "export_csv")
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))
    assert len(rows) == Lead.objects.count() == 4
    by_name = {row["name"]: row for row in rows}
    assert by_name["مَطْعَمُ البَيْك"]["phone_e164"] == "+966501234567"
    # A cell a spreadsheet would execute is neutralized; a phone starting with "+" is not.
    assert by_name["'=HYPERLINK(\"x\")"]["phone_e164"] == ""


def test_export_jsonl_streams_one_object_per_line(admin_client, leads):
    response = export(admin_client, "export_jsonl")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode("utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4
    assert {record["phone_e164"] for record in records} == {"+966501234567", "+966551112222", "+966112345678", None}
    assert all("local_day" in record and "source_url" in record for record in records)


def staff_user(*perms: str, username: str = "staff"):
    user = get_user_model().objects.create_user(username=username, password="pw-123456789", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="ingestion"))
    return user


def test_export_needs_the_export_permission(client, leads):
    client.force_login(staff_user("view_lead"))
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    form = page.context["action_form"]
    actions = [name for name, _ in form.fields["action"].choices] if form else []
    assert "export_csv" not in actions and "export_jsonl" not in actions
    response = export(client, "export_csv")
    assert not isinstance(response, StreamingHttpResponse)

    client.force_login(staff_user("view_lead", "export_lead", username="exporter"))
    assert isinstance(export(client, "export_csv"), StreamingHttpResponse)


def test_leads_cannot_be_added_or_edited_in_admin(admin_client, leads):
    assert admin_client.get("/admin/ingestion/lead/add/").status_code == 403
    pk = Lead.objects.first().pk
    page = admin_client.get(f"/admin/ingestion/lead/{pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_fingerprint_and_counter_admins_are_read_only(admin_client, leads):
    for url in ("/admin/ingestion/leadfingerprint/", "/admin/ingestion/ingestcounter/"):
        assert admin_client.get(url).status_code == 200
        assert admin_client.get(url + "add/").status_code == 403
    fingerprint = LeadFingerprint.objects.first()
    page = admin_client.get(f"/admin/ingestion/leadfingerprint/{fingerprint.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    counter = IngestCounter.objects.first()
    assert admin_client.post(f"/admin/ingestion/ingestcounter/{counter.pk}/delete/", {"post": "yes"}).status_code == 403
    assert IngestCounter.objects.filter(pk=counter.pk).exists()
