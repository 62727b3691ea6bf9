"""Any signed request is a sign of life, and an answer that refreshed it carries what a heartbeat's
would (docs/API.md, "Liveness")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import make_jobs
from workers_mgmt.models import Worker
from workers_mgmt.selectors import workers_online_count, workers_overdue
from workers_mgmt.services import credential_rotate

pytestmark = pytest.mark.django_db

HEARTBEAT_FIELDS = {"config_version", "update_target"}


def test_a_worker_that_only_pulls_is_alive_and_not_overdue(clock, signed, settings):
    start = timezone.now()
    assert set(signed.pull(1).json()) >= HEARTBEAT_FIELDS
    worker = Worker.objects.get(pk=signed.worker_id)
    assert worker.last_seen_at == start
    assert worker.last_heartbeat_at is None  # it said nothing about itself
    for _ in range(10):  # ten minutes of pulls, no heartbeat
        clock.shift(60)
        assert signed.pull(1).status_code == 200
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    assert workers_overdue(cutoff=cutoff) == []
    assert workers_online_count(cutoff=cutoff) == 1
    clock.shift(settings.LEADOPS_HEARTBEAT_OVERDUE_S + 1)  # then silence: overdue like any worker
    assert workers_overdue(cutoff=timezone.now() - dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)) \
        == [(signed.worker_id, now)]


def test_liveness_is_written_at_most_once_per_refresh_period(clock, signed, settings):
    first = signed.pull(1).json()
    assert set(first) >= HEARTBEAT_FIELDS
    seen = Worker.objects.get(pk=signed.worker_id).last_seen_at
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S - 1)
    second = signed.pull(1).json()
    assert not set(second) & HEARTBEAT_FIELDS  # did not stand in: nothing written
    assert Worker.objects.get(pk=signed.worker_id).last_seen_at == seen
    clock.shift(2)
    third = signed.pull(1).json()
    assert set(third) >= HEARTBEAT_FIELDS
    assert Worker.objects.get(pk=signed.worker_id).last_seen_at == seen + dt.timedelta(
        seconds=settings.LEADOPS_LIVENESS_REFRESH_S + 1)


def test_a_heartbeat_still_records_what_the_worker_says(clock, signed):
    response = signed.post("/api/v1/heartbeat", {"version": "2.0.0", "status": "busy", "running_jobs": 1})
    assert response.status_code == 200
    worker = Worker.objects.get(pk=signed.worker_id)
    assert worker.last_heartbeat_at == worker.last_seen_at == timezone.now()
    assert worker.reported_version == "2.0.0"


def test_an_exchange_that_stands_in_carries_the_heartbeat_fields(clock, signed):
    make_jobs(1)
    answer = signed.post("/api/v1/jobs/exchange", {"reports": [], "pull": {"max": 1}}).json()
    assert len(answer["jobs"]) == 1
    assert set(answer) >= HEARTBEAT_FIELDS
    assert answer["update_target"] is None  # no release set up: as the heartbeat would say


def test_a_pushed_key_rides_on_a_standing_in_pull_with_no_store(clock, signed, settings):
    worker = Worker.objects.get(pk=signed.worker_id)
    signed.pull(1)  # seen: the next pull does not stand in
    issued = credential_rotate(worker=worker, actor="test")
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    response = signed.pull(1)
    assert response.json()["credentials"] == {"pending": {"key_id": issued.key_id, "secret": issued.secret}}
    assert response["Cache-Control"] == "no-store"
    clock.shift(1)
    quiet = signed.pull(1)
    assert "credentials" not in quiet.json() and not quiet.has_header("Cache-Control")


def test_a_refresh_period_near_the_overdue_limit_is_refused_at_start_up(settings):
    from workers_mgmt.checks import check_liveness_refresh

    assert check_liveness_refresh() == []
    settings.LEADOPS_LIVENESS_REFRESH_S = settings.LEADOPS_HEARTBEAT_OVERDUE_S
    [error] = check_liveness_refresh()
    assert error.id == "workers_mgmt.E004"
