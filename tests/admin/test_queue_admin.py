"""Queue admin: campaigns enqueue through the service, jobs move only through actions, attempts are a log."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from queueing.models import AttemptState, Campaign, Job, JobAttempt, JobState, Provider
from tests.factories import make_provider

pytestmark = pytest.mark.django_db

CAMPAIGNS = reverse("admin:queueing_campaign_changelist")
JOBS = reverse("admin:queueing_job_changelist")
ATTEMPTS = reverse("admin:queueing_jobattempt_changelist")


def test_adding_a_campaign_records_who_created_it(admin_client, admin_user, db):
    provider = make_provider("maps")
    response = admin_client.post(reverse("admin:queueing_campaign_add"), {
        "name": "Pharmacies", "provider": provider.pk, "queries": "pharmacy\nclinic",
        "cities": "Riyadh\nJeddah\nDammam", "priority": 3})
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Pharmacies")
    assert campaign.created_by == admin_user
    assert campaign.enqueued_at is None and not campaign.jobs.exists()


def test_a_campaign_with_only_blank_lines_is_refused(admin_client, db):
    response = admin_client.post(reverse("admin:queueing_campaign_add"), {
        "name": "Empty", "provider": make_provider("maps").pk, "queries": "  \n ", "cities": "Riyadh",
        "priority": 0})
    assert response.status_code == 200
    assert "queries" in response.context["adminform"].form.errors


def test_enqueue_creates_one_job_per_query_and_city_then_refuses_a_second_run(admin_client, rows):
    campaign = rows.draft_campaign
    Campaign.objects.filter(pk=campaign.pk).update(queries="bakery\nflorist", cities="Dammam\nAbha\nTaif")
    action = {"action": "enqueue", "_selected_action": [campaign.pk]}

    assert "enqueue" in action_names(admin_client.get(CAMPAIGNS))
    first = admin_client.post(CAMPAIGNS, action, follow=True)
    assert Job.objects.filter(campaign=campaign, state=JobState.QUEUED).count() == 6
    assert "6 job(s) enqueued" in first.content.decode()
    payloads = {(job.payload["query"], job.payload["city"]) for job in Job.objects.filter(campaign=campaign)}
    assert payloads == {(q, c) for q in ("bakery", "florist") for c in ("Dammam", "Abha", "Taif")}

    second = admin_client.post(CAMPAIGNS, action, follow=True)
    assert Job.objects.filter(campaign=campaign).count() == 6
    errors = [m for m in second.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1 and "already enqueued" in errors[0].message


def test_campaign_progress_bar_shows_the_counts(admin_client, rows):
    # The fixture's campaign has 4 jobs: 1 succeeded, 1 dead, 1 cancelled... or fewer, depending on
    # which jobs the claim picked; the numbers must match the states in the database.
    jobs = Job.objects.filter(campaign=rows.campaign)
    succeeded = jobs.filter(state=JobState.SUCCEEDED).count()
    dead = jobs.filter(state=JobState.DEAD).count()
    page = admin_client.get(CAMPAIGNS).content.decode()
    assert f"{succeeded} succeeded" in page and f"{dead} dead" in page
    assert "remaining of 4" in page
    if succeeded:
        assert '<span style="width:25.00%;background:#2e7d32" title="1 succeeded"></span>' in page
    assert "not enqueued" in page  # the draft


def make_campaigns(count: int, provider: Provider, user) -> None:
    for index in range(count):
        campaign = Campaign.objects.create(name=f"C{index}", provider=provider, queries="a\nb", cities="x",
                                           created_by=user)
        Job.objects.bulk_create([
            Job(provider=provider, campaign=campaign, run_at=campaign.created_at, state=state)
            for state in (JobState.SUCCEEDED, JobState.DEAD, JobState.QUEUED)
        ])


def test_campaign_changelist_query_count_does_not_grow_with_the_page(admin_client, admin_user, db,
                                                                     django_assert_max_num_queries):
    provider = make_provider("maps")
    make_campaigns(5, provider, admin_user)
    with CaptureQueriesContext(connection) as five:
        assert admin_client.get(CAMPAIGNS).status_code == 200

    make_campaigns(45, provider, admin_user)
    with django_assert_max_num_queries(len(five)):
        response = admin_client.get(CAMPAIGNS)
    assert len(response.context["cl"].result_list) == 50
    assert response.content.decode().count(">1 succeeded</span>") == 50


def test_enqueued_campaign_cannot_be_edited_or_deleted(admin_client, rows):
    response = admin_client.get(reverse("admin:queueing_campaign_change", args=[rows.campaign.pk]))
    assert "queries" not in response.context["adminform"].form.fields
    assert admin_client.get(reverse("admin:queueing_campaign_delete", args=[rows.campaign.pk])
                            ).status_code == 403


def test_cancel_action_cancels_unfinished_jobs_only(admin_client, rows):
    queued = Job.objects.filter(state=JobState.QUEUED).first()
    leased = Job.objects.filter(state=JobState.LEASED).first()
    succeeded = Job.objects.filter(state=JobState.SUCCEEDED).first()

    response = admin_client.post(JOBS, {"action": "cancel",
                                        "_selected_action": [queued.pk, leased.pk, succeeded.pk]}, follow=True)
    assert {job.pk: job.state for job in Job.objects.filter(pk__in=[queued.pk, leased.pk, succeeded.pk])} == {
        queued.pk: JobState.CANCELLED, leased.pk: JobState.CANCELLED, succeeded.pk: JobState.SUCCEEDED}
    assert JobAttempt.objects.get(pk=leased.current_attempt_id).state == AttemptState.CANCELLED
    assert "2 job(s) cancelled. 1 left as they were" in response.content.decode()


def test_requeue_action_sends_finished_jobs_back_with_attempts_reset(admin_client, rows):
    dead = Job.objects.get(state=JobState.DEAD)
    cancelled = Job.objects.filter(state=JobState.CANCELLED).first()
    queued = Job.objects.filter(state=JobState.QUEUED).first()

    admin_client.post(JOBS, {"action": "requeue", "_selected_action": [dead.pk, cancelled.pk, queued.pk]})
    dead.refresh_from_db()
    cancelled.refresh_from_db()
    assert dead.state == cancelled.state == JobState.QUEUED
    assert dead.attempts == 0 and dead.dead_reason == ""


def test_actions_over_every_job_across_pages(admin_client, rows, monkeypatch):
    monkeypatch.setattr("queueing.admin.common.ACTION_CHUNK", 2)  # the ids reach the service in slices
    admin_client.post(JOBS, {"action": "cancel", "select_across": "1",
                             "_selected_action": [rows.jobs[0].pk]})
    assert not Job.objects.filter(state__in=[JobState.QUEUED, JobState.LEASED]).exists()

    response = admin_client.post(JOBS, {"action": "requeue", "select_across": "1",
                                        "_selected_action": [rows.jobs[0].pk]}, follow=True)
    assert Job.objects.filter(state=JobState.QUEUED).count() == len(rows.jobs)
    assert f"{len(rows.jobs)} job(s) requeued." in response.content.decode()


def test_job_page_is_read_only_with_its_attempts(admin_client, rows):
    job = rows.attempt.job
    url = reverse("admin:queueing_job_change", args=[job.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert not response.context["adminform"].form.fields
    (attempts,) = response.context["inline_admin_formsets"]
    assert len(attempts.formset.queryset) == 1
    before = Job.objects.get(pk=job.pk).state
    assert admin_client.post(url, {"state": "queued"}).status_code == 403
    assert Job.objects.get(pk=job.pk).state == before
    assert admin_client.get(reverse("admin:queueing_job_add")).status_code == 403
    assert admin_client.get(reverse("admin:queueing_job_delete", args=[job.pk])).status_code == 403


def action_names(response) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _ in form.fields["action"].choices if name}


def test_job_actions_need_the_change_permission(client, rows):
    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    queued = Job.objects.filter(state=JobState.QUEUED).first()

    response = client.get(JOBS)
    assert response.status_code == 200
    assert action_names(response) == set()
    client.post(JOBS, {"action": "cancel", "_selected_action": [queued.pk]})
    assert Job.objects.get(pk=queued.pk).state == JobState.QUEUED


def test_jobs_changelist_does_not_count_the_whole_table(admin_client, rows):
    response = admin_client.get(JOBS, {"state__exact": "queued"})
    assert response.context["cl"].show_full_result_count is False
    assert response.context["cl"].full_result_count is None


def test_attempts_admin_refuses_add_change_and_delete(admin_client, rows):
    attempt = rows.attempt
    assert admin_client.get(reverse("admin:queueing_jobattempt_add")).status_code == 403
    url = reverse("admin:queueing_jobattempt_change", args=[quote(attempt.pk)])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"state": "failed"}).status_code == 403
    assert admin_client.get(reverse("admin:queueing_jobattempt_delete", args=[quote(attempt.pk)])).status_code == 403
    response = admin_client.post(ATTEMPTS, {"action": "delete_selected", "_selected_action": [attempt.pk],
                                            "post": "yes"})
    assert JobAttempt.objects.filter(pk=attempt.pk, state=AttemptState.SUCCEEDED).exists()
    assert response.status_code in (200, 302)


def test_provider_policy_is_editable_from_the_list(admin_client, rows):
    other = Provider.objects.get(name="yellow")
    form = {"form-TOTAL_FORMS": 2, "form-INITIAL_FORMS": 2, "_save": "Save"}
    for index, provider in enumerate([rows.provider, other]):
        form.update({f"form-{index}-id": provider.pk, f"form-{index}-enabled": "on",
                     f"form-{index}-max_attempts": 5, f"form-{index}-backoff_base_s": 30,
                     f"form-{index}-backoff_cap_s": 3600, f"form-{index}-lease_seconds": 120})
    form.update({"form-0-max_attempts": 9, "form-0-lease_seconds": 300})
    form.pop("form-1-enabled")

    response = admin_client.post(reverse("admin:queueing_provider_changelist"), form)
    assert response.status_code == 302
    rows.provider.refresh_from_db()
    other.refresh_from_db()
    assert (rows.provider.max_attempts, rows.provider.lease_seconds) == (9, 300)
    assert other.enabled is False


def test_provider_backoff_cap_below_base_is_refused(admin_client, db):
    response = admin_client.post(reverse("admin:queueing_provider_add"), {
        "name": "directory", "enabled": "on", "max_attempts": 5, "backoff_base_s": 600,
        "backoff_cap_s": 60, "lease_seconds": 120})
    assert response.status_code == 200
    assert "backoff_cap_s" in response.context["adminform"].form.errors


def test_provider_with_jobs_cannot_be_deleted(admin_client, rows):
    assert admin_client.get(reverse("admin:queueing_provider_delete", args=[rows.provider.pk])
                            ).status_code == 403


def test_job_date_drill_down_reaches_todays_jobs(admin_client, rows):
    today = timezone.localdate()
    day_link = f"created_at__day={today.day}"

    top = admin_client.get(JOBS).content.decode()
    assert day_link in top  # every job is from this month: the drill-down opens on its days
    response = admin_client.get(JOBS, {"created_at__year": today.year, "created_at__month": today.month,
                                       "created_at__day": today.day})
    assert len(response.context["cl"].result_list) == len(rows.jobs)
    assert "All dates" in admin_client.get(JOBS, {"created_at__year": today.year}).content.decode()
    assert admin_client.get(JOBS, {"created_at__year": today.year - 3}).context["cl"].result_list.count() == 0


def test_job_date_drill_down_spans_years_by_id_range(admin_client, rows):
    Job.objects.filter(pk=min(job.pk for job in rows.jobs)).update(
        created_at=timezone.now() - dt.timedelta(days=800))
    page = admin_client.get(JOBS).content.decode()
    this_year = timezone.localdate().year
    assert f"created_at__year={this_year}" in page
    assert f"created_at__year={this_year - 2}" in page
