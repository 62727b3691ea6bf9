"""Every staff change writes one StaffAction row and publishes its live event on commit.

One test per action, through the door staff really use (an admin page, a command, the staff API).
"""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.urls import reverse

from queueing.models import Campaign, Job, JobState, Provider
from queueing.services import jobs_cancel
from tests.factories import make_jobs, make_provider, only_action
from workers_mgmt.models import Worker, WorkerConfig

TUNING = {"long_poll_wait_s": 0, "max_leads_per_report": 1000, "max_body_bytes": 5 * 1024 * 1024}


@pytest.fixture
def published(received):
    return received


def staff_events(published: list[dict], action: str) -> list[dict]:
    return [e["data"] for e in published if e["type"] == "staff.action" and e["data"]["action"] == action]


def moved(published: list[dict], action: str) -> list[tuple[str, str, str, int]]:
    return sorted((e["data"]["provider"], e["data"]["from_state"], e["data"]["to_state"], e["data"]["count"])
                  for e in published if e["type"] == "jobs.moved" and e["data"]["action"] == action)


def test_enqueue_jobs_command_is_audited_and_moves_the_counters(db, published, commit):
    with commit():
        call_command("enqueue_jobs", "--provider", "maps", "--count", "3", stdout=io.StringIO())
    row = only_action("jobs.enqueue")
    assert (row.actor_name, row.source, row.object_type, row.object_count) == (
        "command:enqueue_jobs", "command", "queueing.job", 3)
    assert row.object_ids.split() == [str(pk) for pk in Job.objects.order_by("pk").values_list("pk", flat=True)]
    assert staff_events(published, "jobs.enqueue")[0]["staff_action_id"] == row.pk
    assert moved(published, "jobs.enqueue") == [("maps", "", "queued", 3)]


def test_staff_api_enqueue_is_audited_with_the_user(admin_client, admin_user, published, commit):
    make_provider("maps")
    with commit():
        response = admin_client.post("/api/v1/jobs", {"provider": "maps", "count": 2},
                                     content_type="application/json")
    assert response.status_code == 201, response.content
    row = only_action("jobs.enqueue")
    assert (row.actor_id, row.actor_name, row.source, row.object_count) == (admin_user.pk, "admin", "api", 2)
    assert staff_events(published, "jobs.enqueue")


def test_admin_cancel_is_audited_and_moves_queued_and_leased_counts(admin_client, admin_user, published,
                                                                      commit, signed):
    jobs = make_jobs(3, provider=make_provider("maps"))
    assert signed.pull(1).status_code == 200  # one of them is leased now
    with commit():
        admin_client.post(reverse("admin:queueing_job_changelist"),
                          {"action": "cancel", "_selected_action": [job.pk for job in jobs]})
    row = only_action("jobs.cancel")
    assert (row.actor_id, row.source, row.object_count, row.detail) == (admin_user.pk, "admin", 3, {"leased": 1})
    assert moved(published, "jobs.cancel") == [("maps", "leased", "cancelled", 1),
                                               ("maps", "queued", "cancelled", 2)]
    assert staff_events(published, "jobs.cancel")[0]["object_count"] == 3


def test_admin_requeue_is_audited(admin_client, published, commit):
    jobs = make_jobs(2, provider=make_provider("maps"))
    jobs_cancel(job_ids=[jobs[0].pk])
    with commit():
        admin_client.post(reverse("admin:queueing_job_changelist"),
                          {"action": "requeue", "_selected_action": [job.pk for job in jobs]})
    row = only_action("jobs.requeue")
    assert row.object_ids == str(jobs[0].pk)
    assert moved(published, "jobs.requeue") == [("maps", "cancelled", "queued", 1)]
    assert staff_events(published, "jobs.requeue")


def _dead(count: int) -> list[Job]:
    jobs = make_jobs(count, provider=make_provider("maps"))
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(state=JobState.DEAD, dead_reason="max_attempts")
    return jobs


@pytest.mark.parametrize(("verb", "action", "to_state"), [("requeue", "dlq.requeue", "queued"),
                                                         ("purge", "dlq.purge", "")])
def test_dlq_command_is_audited(db, published, commit, verb, action, to_state):
    _dead(2)
    with commit():
        call_command("dlq", verb, stdout=io.StringIO())
    row = only_action(action)
    assert (row.actor_name, row.object_count) == ("command:dlq", 2)
    assert moved(published, action) == [("maps", "dead", to_state, 2)]
    assert staff_events(published, action)
    assert Job.objects.filter(state=JobState.DEAD).count() == 0


def test_admin_dead_job_delete_is_audited(admin_client, published, commit):
    jobs = _dead(1)
    with commit():
        admin_client.post(reverse("admin:queueing_deadjob_changelist"),
                          {"action": "delete_selected", "_selected_action": [jobs[0].pk], "post": "yes"})
    assert only_action("dlq.purge").object_ids == str(jobs[0].pk)
    assert staff_events(published, "dlq.purge")


def test_provider_set_command_is_audited_field_by_field(db, published, commit):
    make_provider("maps")
    with commit():
        call_command("provider_set", "maps", "--max-attempts", "7", "--quota-per-min", "30",
                     stdout=io.StringIO())
    row = only_action("provider.policy_set")
    assert row.object_ids == "maps"
    assert row.changes == {"max_attempts": [5, 7], "quota_per_min": [None, 30]}
    assert staff_events(published, "provider.policy_set")


def test_provider_list_editable_is_audited(admin_client, published, commit):
    provider = make_provider("maps")
    form = {"form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "_save": "Save", "form-0-id": provider.pk,
            "form-0-enabled": "on", "form-0-max_attempts": 9, "form-0-backoff_base_s": 30,
            "form-0-backoff_cap_s": 3600, "form-0-lease_seconds": 120}
    with commit():
        assert admin_client.post(reverse("admin:queueing_provider_changelist"), form).status_code == 302
    assert Provider.objects.get(pk=provider.pk).max_attempts == 9
    assert only_action("provider.update").changes == {"max_attempts": [5, 9]}
    assert staff_events(published, "provider.update")


def test_campaign_create_update_and_enqueue_are_audited(admin_client, admin_user, published, commit):
    provider = make_provider("maps")
    with commit():
        admin_client.post(reverse("admin:queueing_campaign_add"), {
            "name": "Pharmacies", "provider": provider.pk, "queries": "pharmacy", "cities": "Riyadh\nJeddah",
            "priority": 3})
    campaign = Campaign.objects.get(name="Pharmacies")
    assert campaign.created_by == admin_user
    assert only_action("campaign.create").object_ids == str(campaign.pk)

    url = reverse("admin:queueing_campaign_change", args=[campaign.pk])
    with commit():
        response = admin_client.post(url, {"name": "Pharmacies", "provider": provider.pk, "queries": "pharmacy",
                                           "cities": "Riyadh\nJeddah", "priority": 5})
    assert response.status_code == 302
    assert only_action("campaign.update").changes == {"priority": [3, 5]}

    with commit():
        admin_client.post(reverse("admin:queueing_campaign_changelist"),
                          {"action": "enqueue", "_selected_action": [campaign.pk]})
    assert only_action("campaign.enqueue").detail == {"jobs_created": 2}
    assert moved(published, "jobs.enqueue") == [("maps", "", "queued", 2)]
    assert {e["action"] for e in (e["data"] for e in published if e["type"] == "staff.action")} == {
        "campaign.create", "campaign.update", "campaign.enqueue"}


def test_worker_disable_and_enable_are_audited(admin_client, admin_user, published, commit, make_signed):
    make_signed("w-a")
    make_signed("w-b")
    url = reverse("admin:workers_mgmt_worker_changelist")
    with commit():
        admin_client.post(url, {"action": "disable_workers", "_selected_action": ["w-a", "w-b"]})
    row = only_action("worker.disable")
    assert (sorted(row.object_ids.split()), row.changes, row.actor_id) == (
        ["w-a", "w-b"], {"enabled": [True, False]}, admin_user.pk)
    with commit():
        admin_client.post(url, {"action": "enable_workers", "_selected_action": ["w-a"]})
    assert only_action("worker.enable").object_ids == "w-a"
    assert not Worker.objects.get(pk="w-b").enabled
    assert len(staff_events(published, "worker.disable")) == len(staff_events(published, "worker.enable")) == 1


def test_worker_edit_is_audited_field_by_field(admin_client, published, commit, make_signed):
    make_signed("w-edit")
    url = reverse("admin:workers_mgmt_worker_change", args=[quote("w-edit")])
    with commit():
        response = admin_client.post(url, {"name": "Renamed", "enabled": "on", "channel": "stable",
                                           "rate_limit_per_min": 120, "notes": "",
                                           "credentials-TOTAL_FORMS": 0, "credentials-INITIAL_FORMS": 0})
    assert response.status_code == 302
    row = only_action("worker.update")
    assert row.changes["name"][1] == "Renamed"
    assert row.changes["rate_limit_per_min"][1] == 120
    assert staff_events(published, "worker.update")


def test_worker_config_save_is_audited(admin_client, published, commit):
    config = WorkerConfig.objects.get()
    url = reverse("admin:workers_mgmt_workerconfig_change", args=[config.pk])
    with commit():
        admin_client.post(url, {"poll_interval_s": 7, "heartbeat_interval_s": 30, "max_batch": 20,
                                "report_chunk_leads": 200, "update_check_interval_s": 3600, "extra": "{}",
                                **TUNING})
    row = only_action("worker_config.save")
    assert row.changes["poll_interval_s"][1] == 7
    assert staff_events(published, "worker_config.save")


def test_staff_action_admin_is_read_only_and_filterable(admin_client, db, commit):
    with commit():
        call_command("enqueue_jobs", "--provider", "maps", "--count", "1", stdout=io.StringIO())
    row = only_action("jobs.enqueue")
    changelist = reverse("admin:core_staffaction_changelist")
    response = admin_client.get(changelist, {"actor_name": "command:enqueue_jobs"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [row]
    found = admin_client.get(changelist, {"q": row.object_ids.split()[0]})
    assert list(found.context["cl"].result_list) == [row]
    assert admin_client.get(changelist, {"actor_name": "someone-else"}).context["cl"].result_count == 0

    change = reverse("admin:core_staffaction_change", args=[row.pk])
    assert admin_client.get(reverse("admin:core_staffaction_add")).status_code == 403
    assert admin_client.post(change, {"action": "forged"}).status_code == 403
    assert admin_client.get(reverse("admin:core_staffaction_delete", args=[row.pk])).status_code == 403
    admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    row.refresh_from_db()
    assert row.action == "jobs.enqueue"
    assert json.loads(json.dumps(row.detail)) == {"provider": "maps", "priority": 0}


def test_a_lead_export_is_audited_with_its_filter_and_row_count(admin_client, db):
    from core.logging import mask_pii
    from ingestion.models import Lead
    from ingestion.schema import parse_lead_rows
    from ingestion.services import lead_batch_ingest
    from tests.factories import lead

    rows = parse_lead_rows([lead(phone="0501234567"), lead(phone="0501234568")], max_leads=10)
    lead_batch_ingest(rows=rows, provider="maps", worker_id="w-1")
    response = admin_client.post(
        reverse("admin:ingestion_lead_changelist") + "?provider=maps&q=0501234567",
        {"action": "export_csv", "_selected_action": [Lead.objects.first().pk], "select_across": "1"})
    exported = b"".join(response.streaming_content).decode().splitlines()
    row = only_action("leads.export")
    assert (row.object_type, row.object_count, row.actor_name) == ("ingestion.lead", 1, "admin")
    assert row.detail == {"format": "csv", "filters": {"provider": "maps", "q": mask_pii("0501234567")},
                          "rows": 1, "all_matching": True, "left_out_suppressed": 0}
    assert len(exported) == 1 + 1  # the header and the one lead the search matched
