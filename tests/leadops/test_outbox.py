"""The monitor events' outbox: written in the state change's own transaction, read in order by ids.

An event row commits or rolls back with the change it describes; a process that dies between its
COMMIT and its push to the Channels group loses nothing (the hub reads the outbox); and the hub's
cursor sees an id that commits after a higher one exactly once (PostgreSQL, real transactions).
"""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core import events
from leadops.live import Viewer
from leadops.models import MonitorEvent
from leadops.selectors import monitor_event_last_id, monitor_events_after


def _online(worker_id: str) -> None:
    events.publish("worker.online", worker_id=worker_id)


@pytest.mark.django_db
def test_the_row_is_written_in_the_transaction_and_rolls_back_with_it(received):
    with pytest.raises(RuntimeError), transaction.atomic():
        _online("w-gone")
        assert MonitorEvent.objects.filter(data__worker_id="w-gone").exists()  # inside, before COMMIT
        raise RuntimeError("the state change failed")
    assert not MonitorEvent.objects.filter(data__worker_id="w-gone").exists()
    assert received == []


@pytest.mark.django_db
def test_an_event_whose_push_never_happened_is_read_from_the_outbox(django_capture_on_commit_callbacks):
    last = monitor_event_last_id()
    # The process "dies" after COMMIT: the on-commit push is never run.
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        _online("w-late")
    rows = monitor_events_after(after_id=last)
    assert [(row["type"], row["data"]) for row in rows] == [("worker.online", {"worker_id": "w-late"})]


@pytest.mark.django_db
def test_events_atomic_stores_one_insert_and_forgets_a_rolled_back_savepoint(
    received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as captured:
        with events.atomic():
            _online("w-1")
            _online("w-2")
            with pytest.raises(RuntimeError), transaction.atomic():
                _online("w-undone")
                raise RuntimeError("this item failed")
            with events.atomic():  # nested: stored by the outermost block
                _online("w-3")
            assert not MonitorEvent.objects.filter(data__worker_id="w-1").exists()  # not yet
    inserts = [q for q in captured.captured_queries if q["sql"].startswith('INSERT INTO "leadops_monitorevent"')]
    assert len(inserts) == 1
    stored = list(MonitorEvent.objects.order_by("id").values_list("data__worker_id", flat=True))
    assert stored == ["w-1", "w-2", "w-3"]
    assert [event["data"]["worker_id"] for event in received] == ["w-1", "w-2", "w-3"]
    assert all("id" in event for event in received)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ids_committed_in_reverse_order_reach_the_hub_exactly_once():
    """Transaction A takes id N and commits after B, which takes N+1: the hub shows both, once each."""
    _online("w-base")  # the hub starts after the newest stored id (the sequence may be past an empty table)
    viewer = Viewer(position=monitor_event_last_id())
    inserted, release = threading.Event(), threading.Event()

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                _online("w-slow")
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    slow = threading.Thread(target=slow_transaction)
    slow.start()
    assert inserted.wait(10)
    with transaction.atomic():
        _online("w-fast")
    fast_id, = MonitorEvent.objects.filter(data__worker_id="w-fast").values_list("id", flat=True)

    seen: list[int] = []
    first = async_to_sync(viewer.catch_up)()
    seen += [event["id"] for event in first]
    assert [event["data"]["worker_id"] for event in first] == ["w-fast"]
    assert viewer.cursor.missing() == [fast_id - 1]  # the slow transaction's id, not yet visible

    release.set()
    slow.join(10)
    second = async_to_sync(viewer.catch_up)()
    seen += [event["id"] for event in second]
    assert [event["data"]["worker_id"] for event in second] == ["w-slow"]
    seen += [event["id"] for event in async_to_sync(viewer.catch_up)()]
    assert seen == [fast_id, fast_id - 1]
    assert viewer.cursor.position == fast_id and viewer.cursor.missing() == []
