"""The admin monitor pages: staff only, numbers from the queue and the ingestion counters."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from ingestion.schema import parse_lead_rows
from ingestion.services import lead_batch_ingest
from queueing.models import Job, JobState
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db


def metric(html: str, name: str) -> str:
    marker = f'data-metric="{name}">'
    start = html.index(marker) + len(marker)
    return html[start:html.index("<", start)].strip()


def test_monitor_shows_queue_depth_dlq_and_todays_leads(admin_client):
    provider = make_provider("maps")
    jobs = make_jobs(5, provider=provider)
    Job.objects.filter(pk=jobs[0].pk).update(state=JobState.DEAD, finished_at=timezone.now())
    Job.objects.filter(pk=jobs[1].pk).update(state=JobState.SUCCEEDED, finished_at=timezone.now())
    rows = parse_lead_rows([{"name": "a", "phone": "0501111111"}, {"name": "b", "phone": "0501111111"},
                            {"name": "c", "phone": "junk"}], max_leads=10)
    lead_batch_ingest(rows=rows, provider="maps", worker_id="w-1")

    response = admin_client.get("/admin/monitor/")
    assert response.status_code == 200
    html = response.content.decode()
    assert metric(html, "queue.queued") == "3"
    assert metric(html, "dlq_size") == "1"
    assert metric(html, "succeeded_last_hour") == "1"
    assert (metric(html, "today.added"), metric(html, "today.duplicates"), metric(html, "today.invalid")) == (
        "1", "1", "1")
    assert metric(html, "dup_ratio_24h") == "50.0%"
    # Charts drawn in the page, nothing loaded from elsewhere (a CDN). Attributes are checked, not the
    # whole text: a random CSRF token once spelled "cdn".
    assert "<svg" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.IGNORECASE)


def test_snapshot_has_every_counter_of_the_page_with_the_same_values(admin_client):
    test_monitor_shows_queue_depth_dlq_and_todays_leads(admin_client)
    html = admin_client.get("/admin/monitor/").content.decode()
    snapshot = admin_client.get("/admin/monitor/snapshot/").json()
    page_metrics = {name.split('"')[0] for name in html.split('data-metric="')[1:]}
    # The badge travels with its colour.
    assert set(snapshot["metrics"]) | {"dup_ratio_24h"} == page_metrics
    for name, value in snapshot["metrics"].items():
        assert metric(html, name) == str(value), name
    assert snapshot["dup_ratio_24h"] == {"text": "50.0%", "level": "warn"}


def test_snapshot_follows_changes_that_publish_no_event(admin_client):
    from queueing.services import jobs_cancel

    jobs = make_jobs(4, provider=make_provider("maps"))
    assert admin_client.get("/admin/monitor/snapshot/").json()["metrics"]["queue.queued"] == 4
    jobs_cancel(job_ids=[jobs[0].pk, jobs[1].pk])
    make_jobs(3, provider=make_provider("maps"))
    metrics = admin_client.get("/admin/monitor/snapshot/").json()["metrics"]
    assert (metrics["queue.queued"], metrics["queue.cancelled"], metrics["provider.maps.queued"]) == (5, 2, 5)


def test_snapshot_is_staff_only(client, django_user_model):
    assert client.get("/admin/monitor/snapshot/").status_code == 302
    django_user_model.objects.create_user("plain", password="not-staff-123")
    client.login(username="plain", password="not-staff-123")
    response = client.get("/admin/monitor/snapshot/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_monitor_workers_marks_overdue_heartbeats_offline(admin_client):
    fresh, _ = make_worker(worker_id="fresh")
    stale, _ = make_worker(worker_id="stale")
    now = timezone.now()
    type(fresh).objects.filter(pk="fresh").update(last_seen_at=now - dt.timedelta(seconds=10))
    type(stale).objects.filter(pk="stale").update(last_seen_at=now - dt.timedelta(minutes=10))
    html = admin_client.get("/admin/monitor/workers/").content.decode()
    assert metric(html, "workers_online") == "1"
    fresh_row = html[html.index('data-worker="fresh"'):]
    stale_row = html[html.index('data-worker="stale"'):]
    assert "lo-online" in fresh_row[:fresh_row.index("</tr>")]
    assert "lo-offline" in stale_row[:stale_row.index("</tr>")]


@pytest.mark.parametrize("path", ["/admin/monitor/", "/admin/monitor/workers/"])
def test_monitor_pages_are_staff_only(client, django_user_model, path):
    assert client.get(path).status_code == 302
    client.force_login(django_user_model.objects.create_user("viewer", password="pw-123456789"))
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_monitor_query_count_does_not_grow_with_data(admin_client, django_assert_max_num_queries):
    make_jobs(200, provider=make_provider("maps"))
    for index in range(5):
        make_provider(f"p{index}", enabled=index % 2 == 0)
        make_worker(worker_id=f"w-{index}")
    # 12 before the releases block (docs/RELEASES.md, "Adoption"), which adds four fixed reads: workers per channel and
    # version, channels, rollouts in progress, failed installs; "why stopped" four (counts, breakers, quotas,
    # providers), the fleet grid two (workers, breakers), the last-hour chart three, the last minute one.
    with django_assert_max_num_queries(26):
        assert admin_client.get("/admin/monitor/").status_code == 200
