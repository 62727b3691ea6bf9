"""What the queue and the fleet publish, when, and how viewers get it (stored, coalesced)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leadops.live import HeartbeatCoalescer, ReplayCursor, Viewer
from leadops.models import MonitorEvent
from leadops.services import monitor_events_trim
from tests.factories import lead, make_jobs, make_provider
from workers_mgmt.models import WorkerOfflineNotice
from workers_mgmt.presence import workers_offline_announce

pytestmark = pytest.mark.django_db


def _types(received):
    return [event["type"] for event in received]


def test_report_publishes_on_commit_only_with_the_ingested_counts(
    signed, received, django_capture_on_commit_callbacks
):
    job = make_jobs(1)[0]
    claim = signed.pull(1).json()["jobs"][0]
    rows = [lead("A", "0501111111"), lead("B", "0501111111"), lead("C", "0502222222"), lead("D", "x")]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                          "leads": rows})
    assert response.status_code == 200
    assert received == []  # nothing leaves before the transaction commits
    # ...but the outbox rows were written in the report's own transaction, in one INSERT.
    stored = list(MonitorEvent.objects.filter(type__in=["leads.ingested", "job.succeeded"]).order_by("id")
                  .values_list("type", flat=True))
    assert stored == ["leads.ingested", "job.succeeded"]
    for callback in callbacks:
        callback()
    assert _types(received) == ["leads.ingested", "job.succeeded"]
    ingested, succeeded = (event["data"] for event in received)
    assert ingested == {"job_id": job.pk, "provider": "maps", "worker_id": "w-main",
                        "added": 2, "duplicates": 1, "invalid": 1}
    assert {k: succeeded[k] for k in ("added", "duplicates", "invalid", "attempt")} == {
        "added": 2, "duplicates": 1, "invalid": 1, "attempt": 1}
    # Delivered with the ids of their outbox rows, which viewers de-duplicate by.
    assert [event["id"] for event in received] == list(
        MonitorEvent.objects.filter(type__in=["leads.ingested", "job.succeeded"]).order_by("id")
        .values_list("id", flat=True))


def test_succeeded_counts_sum_every_chunk_of_the_attempt(signed, received, django_capture_on_commit_callbacks):
    job = make_jobs(1)[0]
    claim = signed.pull(1).json()["jobs"][0]
    with django_capture_on_commit_callbacks(execute=True):
        signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "partial",
                               "leads": [lead("A", "0501111111")]})
        signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                               "leads": [lead("B", "0502222222"), lead("C", "0501111111")]})
    assert _types(received) == ["job.claimed", "leads.ingested", "leads.ingested", "job.succeeded"][1:]
    assert received[-1]["data"]["added"] == 2 and received[-1]["data"]["duplicates"] == 1


def test_a_refused_report_publishes_nothing(signed, received, django_capture_on_commit_callbacks):
    job = make_jobs(1)[0]
    signed.pull(1)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed.report(job.pk, {"attempt_id": "00000000-0000-0000-0000-000000000000",
                                          "outcome": "succeeded", "leads": [lead()]})
    assert response.status_code == 404
    assert received == []


def test_failure_then_dead_are_published(signed, received, django_capture_on_commit_callbacks):
    job = make_jobs(1, provider=make_provider("flaky", max_attempts=2))[0]
    error = {"code": "captcha", "message": "blocked", "retryable": True}
    with django_capture_on_commit_callbacks(execute=True):
        claim = signed.pull(1).json()["jobs"][0]
        signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "failed", "error": error})
    # The worker's first request of all is its first sign of life (docs/API.md, "Liveness").
    assert _types(received) == ["worker.online", "job.claimed", "leads.ingested", "job.failed"]
    assert received[-1]["data"]["error_code"] == "captcha"
    from queueing.models import Job

    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - dt.timedelta(hours=1))  # ready again now
    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        claim = signed.pull(1).json()["jobs"][0]
        signed.report(job.pk, {"attempt_id": claim["attempt_id"], "outcome": "failed", "error": error})
    assert _types(received) == ["job.claimed", "leads.ingested", "job.dead"]
    assert received[-1]["data"]["reason"] == "max_attempts"


def test_a_claim_of_50_is_stored_with_one_insert_in_its_transaction(
    signed, received, django_capture_on_commit_callbacks, django_assert_num_queries
):
    make_jobs(50)
    assert _heartbeat(signed).status_code == 200  # seen already: the pull publishes no worker.online
    received.clear()
    with django_capture_on_commit_callbacks(execute=False) as callbacks, \
            CaptureQueriesContext(connection) as captured:
        assert len(signed.pull(50).json()["jobs"]) == 50
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('INSERT INTO "leadops_monitorevent"')]
    assert len(inserts) == 1
    assert MonitorEvent.objects.filter(type="job.claimed").count() == 50  # before the commit's callbacks
    with django_assert_num_queries(0):  # the commit only pushes: nothing is written after it
        for callback in callbacks:
            callback()
    assert _types(received) == ["job.claimed"] * 50


def test_reaper_publishes_failed_and_dead(signed, received, django_capture_on_commit_callbacks):
    from queueing.services import leases_reap

    make_jobs(1, provider=make_provider("once", max_attempts=1))
    make_jobs(1, provider=make_provider("twice", max_attempts=2))
    signed.pull(2)
    received.clear()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert leases_reap(now=later) == 2
    by_type = {event["type"]: event["data"] for event in received}
    assert by_type["job.dead"]["reason"] == "lease_expired" and by_type["job.dead"]["provider"] == "once"
    assert by_type["job.failed"]["error_code"] == "lease_expired" and by_type["job.failed"]["worker_id"] == "w-main"


def _heartbeat(signed):
    return signed.post("/api/v1/heartbeat", {"version": "1.2", "status": "ok", "running_jobs": 1})


def test_worker_offline_is_published_once_per_transition(clock, signed, received,
                                                         django_capture_on_commit_callbacks):
    start = timezone.now()
    with time_machine.travel(start, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert _heartbeat(signed).status_code == 200
    assert _types(received) == ["worker.online", "worker.heartbeat"]
    received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        with time_machine.travel(start + dt.timedelta(seconds=60), tick=False):
            assert workers_offline_announce() == []  # not overdue yet
        with time_machine.travel(start + dt.timedelta(minutes=3), tick=False):
            assert workers_offline_announce() == ["w-main"]
            assert workers_offline_announce() == []
        with time_machine.travel(start + dt.timedelta(minutes=10), tick=False):
            assert workers_offline_announce() == []
    assert _types(received) == ["worker.offline"]
    assert received[0]["data"] == {"worker_id": "w-main", "last_heartbeat_at": start.isoformat()}

    received.clear()
    back = start + dt.timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        with time_machine.travel(back, tick=False):
            _heartbeat(signed)  # heard from after being overdue: online again
        with time_machine.travel(back + dt.timedelta(seconds=30), tick=False):
            _heartbeat(signed)  # still online: no second worker.online
        with time_machine.travel(back + dt.timedelta(minutes=5), tick=False):
            assert workers_offline_announce() == ["w-main"]
            assert workers_offline_announce() == []
    assert _types(received) == ["worker.online", "worker.heartbeat", "worker.heartbeat", "worker.offline"]
    assert WorkerOfflineNotice.objects.get().last_heartbeat_at == back + dt.timedelta(seconds=30)


def test_heartbeats_are_not_stored(signed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _heartbeat(signed)
        _heartbeat(signed)
    assert list(MonitorEvent.objects.values_list("type", flat=True)) == ["worker.online"]


def _hb(worker_id: str, running: int) -> dict:
    return {"type": "worker.heartbeat", "at": "t",
            "data": {"worker_id": worker_id, "version": "1", "status": "ok", "running_jobs": running}}


def test_heartbeats_of_1000_workers_reach_a_viewer_as_one_batch_a_second():
    viewer = Viewer(position=0)
    for round_ in range(3):
        batch = [_hb(f"w-{i}", round_) for i in range(1000)]
        assert viewer.take(batch) == []  # never forwarded one by one
    coalescer: HeartbeatCoalescer = viewer.heartbeats
    first = coalescer.due(now=1000.0)
    assert len(first) == 1000
    assert {event["data"]["running_jobs"] for event in first} == {2}  # only the latest per worker
    viewer.take([_hb("w-1", 7)])
    assert coalescer.due(now=1000.5) is None  # not again within the second
    again = coalescer.due(now=1001.0)
    assert [event["data"] for event in again] == [_hb("w-1", 7)["data"]]
    assert coalescer.due(now=1005.0) is None  # nothing new, nothing sent


def test_replay_cursor_delivers_each_id_once_and_waits_for_gaps():
    cursor = ReplayCursor(10)
    assert cursor.accept(11) and cursor.accept(13)
    assert not cursor.accept(11) and not cursor.accept(13) and not cursor.accept(9)
    assert cursor.position == 11 and cursor.missing() == [12]
    assert cursor.accept(12)  # the slower transaction's event still gets through
    assert cursor.position == 13 and cursor.missing() == []


def test_trim_keeps_the_newest_events():
    MonitorEvent.objects.bulk_create(
        [MonitorEvent(type="worker.online", at=dt.datetime.now(dt.UTC), data={"worker_id": str(i)})
         for i in range(30)]
    )
    newest = list(MonitorEvent.objects.order_by("-id").values_list("id", flat=True)[:20])
    assert monitor_events_trim(keep=20) == 10
    assert sorted(MonitorEvent.objects.values_list("id", flat=True)) == sorted(newest)
    assert monitor_events_trim(keep=20) == 0
