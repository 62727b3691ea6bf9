"""A data-subject request from receipt to closure: the 30-day clock, one extension, the due-soon alert
delivered to a local webhook, the export and the erasure linked to it, and a receipt without the number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from alerts.services import evaluator_tick, receiver_set
from core.models import StaffAction
from ingestion.models import DataSubjectRequest, ErasureReceipt, Lead, RequestStatus
from ingestion.services import phone_digest
from tests.ingestion.conftest import ingest, lead
from tests.ingestion.test_privacy import NEEDLES, database_rows_containing

pytestmark = pytest.mark.django_db

NUMBER = "+966501234567"
MASKED = "+9665****4567"
# Tables of this issue that must never hold the number in clear (the mask and the keyed hash only).
OWN_TABLES = {"ingestion_datasubjectrequest", "ingestion_requestaction", "ingestion_erasurereceipt"}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def delivered(http_receiver, clock, *, alertname: str) -> list[dict]:
    """One evaluator round, the group wait, a second round: the alerts of `alertname` the hook received."""
    before = len(http_receiver.at("/hook"))
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    posts = http_receiver.at("/hook")[before:]
    return [alert for post in posts for alert in post.json()["alerts"]
            if alert["labels"]["alertname"] == alertname and alert["status"] == "firing"]


def test_a_request_walks_from_receipt_to_closure_with_an_extension_and_the_due_soon_alert(
        clock, http_receiver, tmp_path):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    ingest([lead("Cafe", "0501234567"), lead("Other", "0551111111")])
    received = timezone.now()

    opened = json.loads(run("privacy_request", "open", "--kind", "erasure", "--channel", "email",
                            "--phone", "+966 50 123 4567", "--reference", "T-1"))
    request_id = opened["id"]
    assert opened["phone_masked"] == MASKED and opened["phone_hmac"] == phone_digest(e164=NUMBER)
    assert dt.datetime.fromisoformat(opened["due_at"]) == received + dt.timedelta(days=30)

    # 8 days before the due date: nothing yet. 7 days before: the alert, naming the request, not the number.
    clock.move_to(received + dt.timedelta(days=22))
    assert delivered(http_receiver, clock, alertname="dsr_due_soon") == []
    clock.move_to(received + dt.timedelta(days=23, minutes=1))
    [soon] = delivered(http_receiver, clock, alertname="dsr_due_soon")
    assert soon["labels"]["request"] == str(request_id) and soon["labels"]["stage"] == "soon"
    assert all(needle not in json.dumps(soon, ensure_ascii=False) for needle in NEEDLES)

    # One extension, with a reason; a second is refused.
    extended = json.loads(run("privacy_request", "extend", str(request_id), "--days", "20",
                              "--reason", "records held by the provider"))
    assert extended["status"] == RequestStatus.EXTENDED
    assert dt.datetime.fromisoformat(extended["due_at"]) == received + dt.timedelta(days=50)
    with pytest.raises(CommandError, match="once only"):
        run("privacy_request", "extend", str(request_id), "--days", "5", "--reason", "again")
    assert StaffAction.objects.filter(action="privacy.request_extend").count() == 1

    # The export and the erasure, linked; the number must be the request's.
    with pytest.raises(CommandError, match="another number"):
        run("privacy_export", "--phone", "0551111111", "--request", str(request_id))
    out = tmp_path / "export.json"
    run("privacy_export", "--phone", "0501234567", "--request", str(request_id), "--out", str(out))
    erased = json.loads(run("privacy_erase", "--phone", "٠٥٠١٢٣٤٥٦٧", "--reason", "T-1",
                            "--request", str(request_id)))
    assert erased["erased_leads"] == 1 and erased["suppressed"] is True
    assert not Lead.objects.filter(phone_e164=NUMBER).exists()

    # On the (extended) due date the alert comes again, as the "due" stage.
    clock.move_to(received + dt.timedelta(days=50, minutes=1))
    [due] = delivered(http_receiver, clock, alertname="dsr_due_soon")
    assert due["labels"] == {**due["labels"], "request": str(request_id), "stage": "due"}

    closed = json.loads(run("privacy_request", "close", str(request_id), "--outcome", "erased; receipt sent"))
    assert closed["status"] == RequestStatus.CLOSED
    assert [action["kind"] for action in closed["actions"]] == [
        "extension", "export", "erasure", "suppression", "closure"]
    export_action = closed["actions"][1]["detail"]
    assert export_action["sha256"] == hashlib.sha256(out.read_text(encoding="utf-8").rstrip("\n").encode()).hexdigest()
    assert export_action["file"] == "export.json" and export_action["leads"] == 1
    # Closed: the next rounds send nothing more about it.
    clock.shift(3600)
    assert delivered(http_receiver, clock, alertname="dsr_due_soon") == []

    # The receipt, as the requester gets it: counts, when, by whom, the keyed hash; no number in clear.
    receipt = ErasureReceipt.objects.get(pk=erased["receipt"])
    assert receipt.request_id == request_id
    document = run("erasure_receipt", str(receipt.pk))
    data = json.loads(document)
    assert data["rows_erased"] == {"leads": 1, "fingerprints": 1, "mentions": 0}
    assert data["phone_hmac"] == phone_digest(e164=NUMBER) and data["erased_by"] == "command:privacy_erase"
    assert all(needle not in document for needle in NEEDLES)
    for needle in NEEDLES:
        assert not OWN_TABLES & {table for table, _ in database_rows_containing(needle)}, needle


def test_an_extension_is_once_at_most_30_days_with_a_reason_and_a_closed_request_takes_no_action(clock):
    opened = json.loads(run("privacy_request", "open", "--kind", "access", "--channel", "letter",
                            "--phone", "0501234567"))
    request_id = str(opened["id"])
    with pytest.raises(CommandError, match="1 to 30 days"):
        run("privacy_request", "extend", request_id, "--days", "31", "--reason", "too long")
    with pytest.raises(CommandError, match="reason"):
        run("privacy_request", "extend", request_id, "--days", "10", "--reason", " ")
    run("privacy_request", "close", request_id, "--outcome", "refused: identity not shown", "--refused")
    assert DataSubjectRequest.objects.get().status == RequestStatus.REFUSED
    with pytest.raises(CommandError, match="closed"):
        run("privacy_export", "--phone", "0501234567", "--request", request_id)


def test_staff_record_extend_and_close_a_request_in_admin(admin_client, clock):
    page = admin_client.post("/admin/ingestion/datasubjectrequest/add/", {
        "kind": "objection", "channel": "phone", "phone": "0501234567", "reference": "call 12",
        "notes": "called from 0501234567", "received_at_0": timezone.localdate().isoformat(),
        "received_at_1": "10:00:00"})
    assert page.status_code == 302
    request = DataSubjectRequest.objects.get()
    assert request.phone_masked == MASKED and "0501234567" not in request.notes
    change = f"/admin/ingestion/datasubjectrequest/{request.pk}/change/"
    assert admin_client.post(change, {"extend_days": "15", "extend_reason": "busy season"}).status_code == 302
    assert admin_client.post(change, {"close_outcome": "number suppressed"}).status_code == 302
    request.refresh_from_db()
    assert request.extended_days == 15 and request.status == RequestStatus.CLOSED
    assert [a.kind for a in request.actions.all()] == ["extension", "closure"]
    assert StaffAction.objects.filter(action__startswith="privacy.request_").count() == 3


def test_the_admin_download_links_the_export_to_its_request_and_refuses_another_number(admin_client, clock):
    ingest([lead("Cafe", "0501234567")])
    opened = json.loads(run("privacy_request", "open", "--kind", "access", "--channel", "web_form",
                            "--phone", "0501234567"))
    url = "/admin/ingestion/lead/privacy-export/"
    refused = admin_client.post(url, {"phone": "0551111111", "format": "json", "request": opened["id"]})
    assert refused.status_code == 200 and "another number" in refused.content.decode()
    response = admin_client.post(url, {"phone": "+966501234567", "format": "json", "request": opened["id"]})
    assert response.status_code == 200
    [action] = DataSubjectRequest.objects.get().actions.all()
    assert action.kind == "export" and action.detail["leads"] == 1
    assert action.detail["sha256"] == hashlib.sha256(response.content).hexdigest()
    assert action.detail["file"].startswith("subject-export-") and action.detail["file"].endswith(".json")
