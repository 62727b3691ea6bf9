"""Every admin page of the fleet and the queue answers a superuser, and only staff."""

from __future__ import annotations

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.urls import reverse

pytestmark = pytest.mark.django_db

CHANGELISTS = [
    "workers_mgmt_worker", "workers_mgmt_workercredential", "queueing_provider", "queueing_campaign",
    "queueing_job", "queueing_jobattempt",
]


@pytest.mark.parametrize("name", CHANGELISTS)
def test_changelist_answers_200(admin_client, rows, name):
    response = admin_client.get(reverse(f"admin:{name}_changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 1


def change_urls(rows) -> list[str]:
    return [
        reverse("admin:workers_mgmt_worker_change", args=[quote(rows.worker.pk)]),
        reverse("admin:workers_mgmt_workercredential_change", args=[quote(rows.credential.pk)]),
        reverse("admin:workers_mgmt_workerconfig_change", args=[rows.config.pk]),
        reverse("admin:queueing_provider_change", args=[rows.provider.pk]),
        reverse("admin:queueing_campaign_change", args=[rows.campaign.pk]),
        reverse("admin:queueing_campaign_change", args=[rows.draft_campaign.pk]),
        *[reverse("admin:queueing_job_change", args=[job.pk]) for job in rows.jobs],
        reverse("admin:queueing_jobattempt_change", args=[quote(rows.attempt.pk)]),
    ]


def test_change_pages_answer_200(admin_client, rows):
    for url in change_urls(rows):
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.parametrize("name", ["workers_mgmt_worker", "queueing_provider", "queueing_campaign"])
def test_add_pages_answer_200(admin_client, rows, name):
    assert admin_client.get(reverse(f"admin:{name}_add")).status_code == 200


def test_filters_and_searches_answer_200(admin_client, rows):
    pages = {
        "workers_mgmt_worker": [{"enabled__exact": "1"}, {"channel": "stable"}, {"q": "w-admin"}],
        "workers_mgmt_workercredential": [{"state__exact": "current"}, {"q": rows.credential.pk}],
        "queueing_job": [{"state__exact": "dead"}, {"provider__id__exact": rows.provider.pk},
                         {"leased_by__id__exact": "w-admin"}, {"campaign__id__exact": rows.campaign.pk},
                         {"q": "coffee"}, {"q": str(rows.jobs[0].pk)}, {"created_at__year": "2020"}],
        "queueing_jobattempt": [{"state__exact": "succeeded"}, {"worker__id__exact": "w-admin"},
                                {"q": str(rows.attempt.pk)}, {"q": str(rows.attempt.job_id)}, {"q": "nope"}],
        "queueing_campaign": [{"enqueued": "yes"}, {"enqueued": "no"}, {"q": "Cafes"}],
    }
    for name, queries in pages.items():
        for query in queries:
            response = admin_client.get(reverse(f"admin:{name}_changelist"), query)
            assert response.status_code == 200, (name, query)
            assert "e" not in response.wsgi_request.GET, (name, query)


def test_job_search_by_number_finds_that_job(admin_client, rows):
    job = rows.jobs[-1]
    response = admin_client.get(reverse("admin:queueing_job_changelist"), {"q": str(job.pk)})
    assert [obj.pk for obj in response.context["cl"].result_list] == [job.pk]


def test_worker_config_changelist_goes_to_the_single_row(admin_client, rows):
    response = admin_client.get(reverse("admin:workers_mgmt_workerconfig_changelist"))
    assert response.status_code == 302
    assert response.url == reverse("admin:workers_mgmt_workerconfig_change", args=[rows.config.pk])


@pytest.mark.parametrize("name", [*CHANGELISTS, "workers_mgmt_workerconfig"])
def test_non_staff_users_are_sent_to_login(client, rows, name):
    user = get_user_model().objects.create_user("plain", password="x")
    client.force_login(user)
    url = reverse(f"admin:{name}_changelist")
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_anonymous_users_are_sent_to_login(client, rows):
    for url in change_urls(rows):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith(reverse("admin:login")), url
