"""Tuning from admin without a restart: poll interval, long-poll wait, batch and payload limits."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from queueing.services import jobs_enqueue
from tests.factories import lead, make_jobs, make_provider
from workers_mgmt.models import WorkerConfig

pytestmark = pytest.mark.django_db

CONFIG = "/admin/workers_mgmt/workerconfig/1/change/"


def admin_set(admin_client, **changes):
    config = WorkerConfig.objects.get_or_create(pk=1)[0]
    form = {"poll_interval_s": config.poll_interval_s, "long_poll_wait_s": config.long_poll_wait_s,
            "heartbeat_interval_s": config.heartbeat_interval_s, "max_batch": config.max_batch,
            "report_chunk_leads": config.report_chunk_leads,
            "max_leads_per_report": config.max_leads_per_report, "max_body_bytes": config.max_body_bytes,
            "update_check_interval_s": config.update_check_interval_s, "extra": "{}", **changes}
    response = admin_client.post(CONFIG, form)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_tuning_changed_in_admin_is_served_by_config_at_once(admin_client, signed):
    admin_set(admin_client, poll_interval_s=9, long_poll_wait_s=20, max_batch=25, max_leads_per_report=300,
              max_body_bytes=1_000_000, report_chunk_leads=500)
    body = signed.get("/api/v1/config").json()
    assert (body["poll_interval_s"], body["long_poll_wait_s"], body["max_batch"], body["max_leads_per_report"],
            body["max_body_bytes"], body["report_chunk_leads"]) == (9, 20, 25, 300, 1_000_000, 300)
    assert signed.pull(1).json()["retry_after_s"] == 9


def test_reports_above_the_tuned_lead_limit_are_refused(admin_client, signed):
    admin_set(admin_client, max_leads_per_report=2)
    job = make_jobs(1)[0]
    claim = signed.pull(1).json()["jobs"][0]
    rows = [lead(f"Shop {i}", f"050000000{i}") for i in range(3)]
    response = signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "succeeded", "leads": rows})
    assert response.status_code == 422, response.content


def test_long_poll_waits_for_a_job_that_becomes_ready(admin_client, signed):
    admin_set(admin_client, long_poll_wait_s=5)
    jobs_enqueue(provider=make_provider("maps"), payloads=[{}],
                 run_at=timezone.now() + dt.timedelta(seconds=1.2))
    started = time.monotonic()
    body = signed.pull(1, wait_s=5).json()
    assert len(body["jobs"]) == 1
    assert 1.0 <= time.monotonic() - started < 4


def test_long_poll_is_capped_by_the_config_and_turned_off_by_zero(admin_client, signed):
    from workers_mgmt.models import WorkerConfig

    assert WorkerConfig().long_poll_wait_s == 30  # on by default (docs/API.md, "Long poll")
    admin_set(admin_client, long_poll_wait_s=0)
    started = time.monotonic()
    assert signed.pull(1, wait_s=10).json()["jobs"] == []
    assert time.monotonic() - started < 0.9  # 0: pulls never wait
    admin_set(admin_client, long_poll_wait_s=1)
    started = time.monotonic()
    assert signed.pull(1, wait_s=10).json()["jobs"] == []
    assert 0.9 <= time.monotonic() - started < 3
