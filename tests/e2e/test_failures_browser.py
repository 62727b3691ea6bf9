"""Admin › Failure clusters, its remedy page and a lead's lineage in a real browser (Debian chromium
through Playwright). The screenshots are kept in storage/test-artifacts/."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.audit import Actor
from ingestion.models import Lead
from queueing.models import Campaign
from queueing.services import campaign_create, campaign_enqueue
from releases_app.services import rollout_start
from tests.e2e.conftest import ARTIFACTS, admin_login
from tests.factories import make_provider
from tests.releases_app.conftest import _media_in_tmp, fleet, publish, stable_on  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "clusters-and-lineage-123"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def incident(live_portal_url, fleet, stable_on, publish, django_user_model):  # noqa: F811
    """Canary w-01 on 1.1.0: one job finds a lead, four die with the same timeout; w-02 on 1.0.0 is fine.

    Made before the browser starts: Playwright's sync API runs an event loop in this thread, where
    Django refuses synchronous ORM calls.
    """
    operator = django_user_model.objects.create_user("operator", password=PASSWORD, is_staff=True,
                                                     is_superuser=True)
    stable_on("1.0.0")
    canary, steady = fleet(2)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                  steps=[{"canary": ["w-01"], "hold_s": 1800}, {"percent": 100}], actor="tests")
    canary.update()
    campaign = campaign_create(campaign=Campaign(name="Riyadh cafes", provider=make_provider(),
                                                 queries="coffee\ntea\njuice\nbakery\nsweets\nshawarma",
                                                 cities="Riyadh"), actor=Actor.from_user(operator))
    campaign_enqueue(campaign=campaign)
    jobs = canary.signed.pull(5).json()["jobs"]
    found, failing = jobs[0], jobs[1:]
    body = {"attempt_id": found["attempt_id"], "outcome": "succeeded",
            "leads": [{"name": "Cafe Najd", "phone": "0551234567", "city": "Riyadh"}]}
    assert canary.signed.report(found["id"], body).status_code == 200
    for index, job in enumerate(failing):
        if index == len(failing) - 1:  # the newest failure kept a screenshot
            assert canary.signed.evidence(job["id"], job["attempt_id"], _png()).status_code == 200
        body = {"attempt_id": job["attempt_id"], "outcome": "failed", "leads": [],
                "log_tail": f"open https://maps.example/search?q={index}\nwaited 30000 ms\ntimeout",
                "error": {"code": "timeout", "message": f"Navigation timeout of {30000 + index} ms exceeded",
                          "retryable": False}}
        assert canary.signed.report(job["id"], body).status_code == 200
    for job in steady.signed.pull(1).json()["jobs"]:
        body = {"attempt_id": job["attempt_id"], "outcome": "succeeded", "leads": []}
        assert steady.signed.report(job["id"], body).status_code == 200
    return Lead.objects.get().pk


def test_cluster_page_and_remedy_page_in_the_browser(live_portal_url, incident, browser):
    page = admin_login(browser, live_portal_url, "/admin/failures/clusters/", "operator", PASSWORD)
    rows = page.locator("#lo-failure-clusters tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert row.get_attribute("data-release") == "1.1.0" and row.get_attribute("data-count") == "4"
    assert "began with release 1.1.0 on channel stable" in row.inner_text()
    assert "navigation timeout of <n> ms exceeded" in row.inner_text()
    assert row.locator("text=newest screenshot").count() == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-failure-clusters.png"), full_page=True)
    assert (ARTIFACTS / "admin-failure-clusters.png").stat().st_size > 10_000

    row.locator("a.button").click()
    page.wait_for_selector("#lo-remedy-form")
    text = page.locator("#lo-remedy-form").inner_text()
    assert "Roll channel stable back from 1.1.0 to 1.0.0" in text
    assert "Requeue the cluster's 4 dead jobs" in text
    page.screenshot(path=str(ARTIFACTS / "admin-failure-cluster-remedy.png"), full_page=True)


def test_lead_lineage_page_in_the_browser(live_portal_url, incident, browser):
    lead_id = incident
    page = admin_login(browser, live_portal_url, f"/admin/ingestion/lead/{lead_id}/change/", "operator",
                       PASSWORD)
    page.click("#lo-lineage-link")
    page.wait_for_selector("#lo-lineage")
    kinds = page.locator("#lo-lineage > li")
    assert [kinds.nth(i).get_attribute("data-kind") for i in range(kinds.count())] == [
        "campaign", "job", "attempt", "worker", "release", "evidence", "dedup", "lead"]
    assert "Release 1.1.0" in page.locator('li[data-kind="release"]').inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-lead-lineage.png"), full_page=True)
    assert (ARTIFACTS / "admin-lead-lineage.png").stat().st_size > 10_000
