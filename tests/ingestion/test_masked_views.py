"""One masking rule, by permission, everywhere: staff without ingestion.view_pii never see a full number
(lead list, detail with its title and breadcrumb, history, search, both exports); staff with it see
every number in full, the title included."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from core.models import StaffAction
from ingestion.models import Lead, SuppressedPhone
from tests.ingestion.conftest import ingest, lead

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/ingestion/lead/"
# The national significant number in each script, and a spaced form: none may appear in a page.
# (Not 0501234567: the search box's help text uses it as an example.)
NEEDLES = ["598765432", "٥٩٨٧٦٥٤٣٢", "۵۹۸۷۶۵۴۳۲", "59 876 5432", "551112222"]
# What the search box echoes back is what the user typed; every other form must stay masked.
SEARCH_TERM = "+966 59 876 5432"


def staff(*perms: str, username: str):
    user = get_user_model().objects.create_user(username=username, password="pw-123456789", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="ingestion"))
    # A lead's history is its rows in the staff audit (core.admin_tools): the export rows below.
    user.user_permissions.add(Permission.objects.get(codename="view_staffaction"))
    return user


@pytest.fixture
def leads():
    ingest([lead("Cafe", "+966 59 876 5432", extra={"owner": "call ٠٥٩٨٧٦٥٤٣٢"}, address="near ۰۵۹۸۷۶۵۴۳۲"),
            lead("Shop 0551112222", "0551112222")])


def pages(client) -> dict[str, str]:
    ids = list(Lead.objects.order_by("pk").values_list("pk", flat=True))
    out = {
        "list": client.get(CHANGELIST),
        "search": client.get(CHANGELIST, {"q": SEARCH_TERM}),
        **{f"detail {pk}": client.get(f"{CHANGELIST}{pk}/change/") for pk in ids},
        "csv": client.post(CHANGELIST, {"action": "export_csv", "_selected_action": ids}),
        "jsonl": client.post(CHANGELIST, {"action": "export_jsonl", "_selected_action": ids}),
    }
    out.update({f"history {pk}": client.get(f"{CHANGELIST}{pk}/history/", follow=True) for pk in ids})
    texts = {}
    for name, response in out.items():
        assert response.status_code == 200, name
        body = b"".join(response.streaming_content) if response.streaming else response.content
        texts[name] = body.decode()
    assert "Cafe" in texts["search"] and "Shop" not in texts["search"]
    return texts


def test_staff_without_view_pii_see_only_masked_numbers(client, leads):
    client.force_login(staff("view_lead", "export_lead", username="masked"))
    for name, text in pages(client).items():
        for needle in NEEDLES:
            if name == "search" and needle in SEARCH_TERM:
                continue
            assert needle not in text, (name, needle)
        if not name.startswith("history"):
            assert "+9665****5432" in text or "+9665****2222" in text, name


def test_staff_with_view_pii_see_the_numbers(client, leads):
    client.force_login(staff("view_lead", "export_lead", "view_pii", username="pii"))
    for name, text in pages(client).items():
        if not name.startswith("history"):
            assert "+966598765432" in text or "+966551112222" in text, name
        # The same rule in the title and breadcrumb as in the fields: nothing is masked for them.
        assert "****" not in text, name


def test_the_lead_page_names_the_lead_as_its_fields_do(client, leads):
    shop = Lead.objects.get(phone_e164="+966551112222")
    client.force_login(staff("view_lead", username="nopii-title"))
    masked = client.get(f"{CHANGELIST}{shop.pk}/change/").content.decode()
    assert masked.count("Shop +9665****2222 (+9665****2222)") == 3  # <title>, breadcrumb, subtitle
    client.force_login(staff("view_lead", "view_pii", username="pii-title"))
    full = client.get(f"{CHANGELIST}{shop.pk}/change/").content.decode()
    assert full.count("Shop 0551112222 (+966551112222)") == 3


def test_a_leads_extra_reads_as_labelled_fields_masked_or_not(client, leads):
    cafe = Lead.objects.get(name="Cafe")
    client.force_login(staff("view_lead", username="nopii-extra"))
    assert "<dt>Owner</dt><dd>call +9665****5432</dd>" in client.get(f"{CHANGELIST}{cafe.pk}/change/").content.decode()
    client.force_login(staff("view_lead", "view_pii", username="pii-extra"))
    assert "<dt>Owner</dt><dd>call ٠٥٩٨٧٦٥٤٣٢</dd>" in client.get(f"{CHANGELIST}{cafe.pk}/change/").content.decode()


def test_subject_export_download_needs_view_pii_and_is_audited(client, leads, fixed_key):
    client.force_login(staff("view_lead", username="nopii"))
    assert client.get(f"{CHANGELIST}privacy-export/").status_code == 403
    client.force_login(staff("view_lead", "view_pii", username="dpo"))
    assert "Data-subject export" in client.get(CHANGELIST).content.decode()
    json_download = client.post(f"{CHANGELIST}privacy-export/", {"phone": "00966598765432", "format": "json"})
    assert json_download["Content-Disposition"].endswith('.json"')
    assert '"phone_e164": "+966598765432"' in json_download.content.decode()
    csv_download = client.post(f"{CHANGELIST}privacy-export/", {"phone": "0598765432", "format": "csv"})
    rows = b"".join(csv_download.streaming_content).decode().splitlines()
    assert rows[0].startswith("id,name,phone_raw") and len(rows) == 2 and "+966 59 876 5432" in rows[1]
    bad = client.post(f"{CHANGELIST}privacy-export/", {"phone": "nope", "format": "json"})
    assert bad.status_code == 200 and "Not a phone number" in bad.content.decode()
    assert StaffAction.objects.filter(action="privacy.export", actor_name="dpo").count() == 2


def test_admin_adds_and_removes_suppression_by_number_hashed_on_save(admin_client, fixed_key):
    response = admin_client.post("/admin/ingestion/suppressedphone/add/",
                                 {"phone": "٠٥٠ ١٢٣ ٤٥٦٧", "reason": "opt-out by phone"})
    assert response.status_code == 302, response.content
    entry = SuppressedPhone.objects.get()
    assert entry.phone_masked == "+9665****4567" and len(entry.digest) == 64
    listing = admin_client.get("/admin/ingestion/suppressedphone/", {"q": "+966501234567"}).content.decode()
    assert "+9665****4567" in listing and "opt-out by phone" in listing
    assert ingest([lead("A", "0501234567")]).suppressed == 1
    response = admin_client.post(f"/admin/ingestion/suppressedphone/{entry.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not SuppressedPhone.objects.exists()
    assert [a.action for a in StaffAction.objects.order_by("id")] == ["suppression.add", "suppression.remove"]
