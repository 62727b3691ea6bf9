"""`privacy_record` is generated from the live configuration: every retention class with the period in
force (a change in admin shows in the next record), providers, receivers, exports, locations, security."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from alerts.services import receiver_set
from leadops.models import DataClass, RetentionPolicy
from leadops.retention import default_days
from tests.factories import make_provider

pytestmark = pytest.mark.django_db


def record() -> dict:
    out = io.StringIO()
    call_command("privacy_record", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_every_retention_class_is_listed_with_the_period_in_force_and_an_admin_change_shows_next_time(
        admin_client):
    first = {row["class"]: row for row in record()["data_classes"]}
    assert set(first) == set(DataClass.values)
    for name, days in default_days().items():
        assert first[name]["retention_days"] == days, name

    policy = RetentionPolicy.objects.get(data_class=DataClass.LEADS)
    response = admin_client.post(reverse("admin:leadops_retentionpolicy_change", args=[policy.pk]), {"days": "90"})
    assert response.status_code == 302
    response = admin_client.post(
        reverse("admin:leadops_retentionpolicy_change",
                args=[RetentionPolicy.objects.get(data_class=DataClass.EVIDENCE).pk]), {"days": ""})
    assert response.status_code == 302

    second = {row["class"]: row for row in record()["data_classes"]}
    assert second[DataClass.LEADS]["retention_days"] == 90 and second[DataClass.LEADS]["retention"] == "90 days"
    assert second[DataClass.EVIDENCE]["retention_days"] is None
    assert second[DataClass.EVIDENCE]["retention"] == "kept until deleted (no retention)"


def test_sources_recipients_locations_and_security_come_from_the_configuration(settings, admin_user):
    settings.LEADOPS_SERVER_LOCATION = "Riyadh, Saudi Arabia (provider A)"
    settings.LEADOPS_BACKUP_LOCATION = "Dammam, Saudi Arabia (provider B)"
    make_provider("maps")
    receiver_set(name="ops slack", kind="slack", url="https://hooks.slack.com/services/T/B/secret-token")
    data = record()
    assert data["not_legal_advice"].startswith("Generated") and "not legal advice" in data["not_legal_advice"]
    assert [source["provider"] for source in data["sources"]] == ["maps"]
    [slack] = data["recipients"]["alert_receivers"]
    assert slack["name"] == "ops slack" and "secret-token" not in json.dumps(data)
    assert admin_user.username in data["recipients"]["exports"][0]["who"]
    transfers = {row["what"]: row["where"] for row in data["transfers"]}
    assert transfers["all personal data (the servers)"] == "Riyadh, Saudi Arabia (provider A)"
    assert transfers["backups"] == "Dammam, Saudi Arabia (provider B)"
    assert {row["measure"].split(" (")[0]: row["in_force"] for row in data["security"]}[
        "numbers masked in every log handler"] is True


def test_markdown_holds_the_same_record(settings):
    settings.LEADOPS_SERVER_LOCATION = ""
    out = io.StringIO()
    call_command("privacy_record", "--markdown", stdout=out)
    text = out.getvalue()
    assert text.startswith("# Record of processing") and "not legal advice" in text
    for name in DataClass.values:
        assert f"| {name} |" in text, name
    assert "not set: set LEADOPS_SERVER_LOCATION" in text
