"""The dead-letter queue: admin actions (requeue with priority, delete with permission, requeue by
filter, CSV), the `dlq` command and the size/growth selector."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.utils import timezone

from queueing.models import Job, JobState
from queueing.selectors import dlq_stats
from queueing.services import job_report, jobs_pull, report_request_hash
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db

DLQ = "/admin/queueing/deadjob/"


def make_dead(count: int, provider_name: str = "maps", **extra) -> list[int]:
    jobs = make_jobs(count, provider=make_provider(provider_name))
    ids = [job.pk for job in jobs]
    # Setup shortcut: mark them dead the way _job_fail leaves them.
    fields = {"state": JobState.DEAD, "attempts": 5, "dead_reason": "max_attempts",
              "finished_at": timezone.now(),
              "last_error": {"code": "blocked", "message": "captcha", "retryable": True}, **extra}
    Job.objects.filter(pk__in=ids).update(**fields)
    return ids


def test_a_thousand_dead_jobs_requeued_in_one_admin_action_all_run_again(admin_client):
    ids = make_dead(1000)
    response = admin_client.post(DLQ, {"action": "requeue", "select_across": "1",
                                       "_selected_action": ids[:1], "apply": "1", "priority": "7"},
                                 follow=True)
    assert response.status_code == 200
    assert "1000 dead job(s) requeued" in response.content.decode()
    assert Job.objects.filter(pk__in=ids, state=JobState.QUEUED, attempts=0, priority=7).count() == 1000
    worker, _ = make_worker(worker_id="dlq-runner")
    ran = 0
    while claims := jobs_pull(worker=worker, max_jobs=50).claims:
        for claim in claims:
            job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id,
                       outcome="succeeded", leads=[], error=None, idempotency_key=str(claim.attempt_id),
                       request_hash=report_request_hash(job_id=claim.job_id, body={}))
        ran += len(claims)
    assert ran == 1000
    assert Job.objects.filter(pk__in=ids, state=JobState.SUCCEEDED).count() == 1000


def test_requeue_asks_for_an_optional_priority_first(admin_client):
    ids = make_dead(2)
    page = admin_client.post(DLQ, {"action": "requeue", "_selected_action": ids})
    assert page.status_code == 200 and b'name="priority"' in page.content
    assert Job.objects.filter(state=JobState.DEAD).count() == 2


def test_requeue_matching_takes_the_current_filter(admin_client):
    make_dead(3, "maps")
    other = make_dead(2, "dir")
    provider_id = Job.objects.get(pk=other[0]).provider_id
    url = f"{DLQ}?provider__id__exact={provider_id}"
    # The first POST asks, naming how many the filter holds, and changes nothing (docs/RUNBOOK.md).
    page = admin_client.post(url, {"action": "requeue_matching", "_selected_action": other[:1]})
    assert page.status_code == 200 and b"Requeue all 2 dead job(s)" in page.content
    assert b'name="post" value="yes"' in page.content
    assert Job.objects.filter(state=JobState.DEAD).count() == 5
    admin_client.post(url, {"action": "requeue_matching", "_selected_action": other[:1], "post": "yes"})
    assert set(Job.objects.filter(state=JobState.QUEUED).values_list("pk", flat=True)) == set(other)
    assert Job.objects.filter(state=JobState.DEAD).count() == 3


def test_delete_needs_the_delete_permission(client):
    ids = make_dead(3)
    staff = User.objects.create_user("ops", password="pw-123456", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_deadjob", "change_deadjob"]))
    client.force_login(staff)
    assert b"delete_selected" not in client.get(DLQ).content
    client.post(DLQ, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert Job.objects.filter(pk__in=ids).count() == 3
    staff.user_permissions.add(Permission.objects.get(codename="delete_deadjob"))
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert b"delete_selected" in client.get(DLQ).content
    client.post(DLQ, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert Job.objects.filter(pk__in=ids).count() == 0


def test_dlq_shows_only_dead_jobs_and_exports_csv(admin_client):
    ids = make_dead(2)
    make_jobs(1, provider=make_provider("maps"))
    page = admin_client.get(DLQ)
    assert page.status_code == 200 and "max_attempts" in page.content.decode()
    assert admin_client.get(f"{DLQ}{ids[0]}/change/").status_code == 200
    response = admin_client.post(DLQ, {"action": "export_csv", "_selected_action": ids})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,provider,dead_reason") and len(lines) == 3
    assert "blocked" in lines[1] and "captcha" not in lines[1]


def test_dlq_csv_defuses_a_worker_error_code_that_looks_like_a_formula(admin_client):
    ids = make_dead(1)
    Job.objects.filter(pk__in=ids).update(last_error={"code": "=HYPERLINK(\"http://x\")", "message": ""})
    response = admin_client.post(DLQ, {"action": "export_csv", "_selected_action": ids})
    body = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK" in body and ",=HYPERLINK" not in body and ',"=HYPERLINK' not in body


def test_dlq_command_lists_requeues_and_purges_per_provider():
    maps = make_dead(3, "maps")
    make_dead(2, "dir")
    out = StringIO()
    call_command("dlq", "list", "--provider", "maps", stdout=out)
    assert out.getvalue().strip().endswith("3 dead job(s).")
    call_command("dlq", "requeue", "--provider", "maps", stdout=out)
    assert Job.objects.filter(pk__in=maps, state=JobState.QUEUED, attempts=0).count() == 3
    call_command("dlq", "purge", stdout=out)
    assert Job.objects.filter(state=JobState.DEAD).count() == 0
    assert Job.objects.count() == 3
    with pytest.raises(CommandError, match="No provider"):
        call_command("dlq", "list", "--provider", "nope")


def test_dlq_size_and_growth():
    make_dead(2, finished_at=timezone.now() - dt.timedelta(hours=3))
    make_dead(1)
    assert dlq_stats() == {"size": 3, "last_hour": 1, "last_24h": 3}


def test_monitor_page_shows_dlq_size_and_growth(admin_client):
    make_dead(4)
    page = admin_client.get("/admin/monitor/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="lo-dlq"' in html and "<strong>4</strong> dead job(s)" in html
    assert "4 in the last hour" in html


def test_monitor_page_links_to_the_dead_job_admin(admin_client):
    html = admin_client.get("/admin/monitor/").content.decode()
    assert 'href="/admin/queueing/deadjob/">Dead-letter queue' in html
