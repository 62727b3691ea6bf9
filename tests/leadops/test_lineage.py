"""The lineage of a lead (campaign -> job -> attempt -> worker -> release -> evidence -> dedup) and of a
dead job backwards, on staff-only admin pages that mask personal data like the lead admin."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from core.audit import Actor
from ingestion.models import Lead
from queueing.models import Campaign
from queueing.services import campaign_create, campaign_enqueue
from releases_app.services import rollout_start
from tests.factories import make_provider
from tests.releases_app.conftest import _media_in_tmp, fleet, publish, stable_on  # noqa: F401

PHONE = "0551234567"


@pytest.fixture
def canary_lead(clock, fleet, stable_on, publish, admin_user):  # noqa: F811
    """A campaign's job run by canary w-01 on 1.1.0, which reports one lead; another job dies on it."""
    stable_on("1.0.0")
    workers = fleet(2)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                  steps=[{"canary": ["w-01"], "hold_s": 600}, {"percent": 100}], actor="tests")
    workers[0].update()
    clock.shift(dt.timedelta(minutes=2))
    campaign = campaign_create(campaign=Campaign(name="Riyadh cafes", provider=make_provider(),
                                                 queries="coffee\ntea", cities="Riyadh"),
                               actor=Actor.from_user(admin_user))
    campaign_enqueue(campaign=campaign)
    good, bad = workers[0].signed.pull(2).json()["jobs"]
    body = {"attempt_id": good["attempt_id"], "outcome": "succeeded",
            "leads": [{"name": "Cafe Najd", "phone": PHONE, "city": "Riyadh"}]}
    assert workers[0].signed.report(good["id"], body).status_code == 200
    body = {"attempt_id": bad["attempt_id"], "outcome": "failed", "leads": [],
            "error": {"code": "blocked", "message": "captcha on page 2 calling 0551234999",
                      "retryable": False}}
    assert workers[0].signed.report(bad["id"], body).status_code == 200
    return Lead.objects.get(), bad["id"]


def _staff(django_user_model, *perms: str):
    user = django_user_model.objects.create_user("lineage-staff", password="pw-lineage-1", is_staff=True)
    for codename in perms:
        app, name = codename.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=name))
    return user


def test_lead_lineage_runs_from_campaign_to_dedup_decision(canary_lead, client, django_user_model):
    lead, _ = canary_lead
    client.force_login(_staff(django_user_model, "ingestion.view_lead", "ingestion.view_pii"))
    page = client.get(reverse("leadops-lead-lineage", args=[lead.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    order = ["Campaign Riyadh cafes", f"Job {lead.job_id}", "Attempt 1 of job", "Worker w-01",
             "Release 1.1.0", "manifest sequence at the claim", "Evidence", "Dedup decision: added",
             f"Lead {lead.pk}"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "+966551234567" in text  # view_pii: the full number


def test_lead_lineage_masks_phones_without_view_pii(canary_lead, client, django_user_model):
    lead, _ = canary_lead
    client.force_login(_staff(django_user_model, "ingestion.view_lead"))
    text = client.get(reverse("leadops-lead-lineage", args=[lead.pk])).content.decode()
    assert "+966551234567" not in text and "551234567" not in text
    assert "Names and phones are masked" in text


def test_lead_change_page_links_to_its_lineage(canary_lead, admin_client):
    lead, _ = canary_lead
    page = admin_client.get(reverse("admin:ingestion_lead_change", args=[lead.pk])).content.decode()
    assert reverse("leadops-lead-lineage", args=[lead.pk]) in page


def test_dead_job_lineage_goes_backwards_from_the_dlq(canary_lead, admin_client):
    _, dead_id = canary_lead
    page = admin_client.get(reverse("admin:queueing_deadjob_change", args=[dead_id])).content.decode()
    url = reverse("leadops-dead-job-lineage", args=[dead_id])
    assert url in page
    text = admin_client.get(url).content.decode()
    assert f"Job {dead_id}" in text and "Worker w-01" in text and "Release 1.1.0" in text
    assert "blocked: captcha on page 2 calling" in text
    assert "0551234999" not in text  # a number in an error message is masked, even for a superuser
    assert text.index(f"Job {dead_id}") < text.index("Campaign Riyadh cafes")  # backwards


def test_lineage_pages_are_staff_only(canary_lead, client, django_user_model):
    lead, dead_id = canary_lead
    for url in (reverse("leadops-lead-lineage", args=[lead.pk]), reverse("leadops-dead-job-lineage",
                                                                         args=[dead_id])):
        assert client.get(url).status_code == 302
    client.force_login(_staff(django_user_model))
    assert client.get(reverse("leadops-lead-lineage", args=[lead.pk])).status_code == 403
