"""Monitor events leave only on commit, and only in their declared shape."""

from __future__ import annotations

import pytest
from django.db import transaction

from core import events


def test_event_is_delivered_after_commit_not_before(transactional_db, received):
    with transaction.atomic():
        events.publish("worker.online", worker_id="w-1")
        assert received == []
    assert [e["type"] for e in received] == ["worker.online"]
    assert received[0]["data"] == {"worker_id": "w-1"}


def test_event_of_a_rolled_back_transaction_is_never_delivered(transactional_db, received):
    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish("worker.online", worker_id="w-1")
        raise RuntimeError("roll back")
    assert received == []


@pytest.mark.parametrize("fields", [{}, {"worker_id": "w-1", "surprise": 1}])
def test_event_with_wrong_fields_is_refused(fields):
    with pytest.raises(ValueError):
        events.publish("worker.online", **fields)


def test_unknown_event_type_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        events.event_build("job.vanished", job_id=1)


def test_a_failing_sink_does_not_stop_the_others(transactional_db, received):
    def broken(event):
        raise RuntimeError("viewer gone")

    events.sink_register(broken)
    try:
        events.publish("worker.online", worker_id="w-2")
    finally:
        events.sink_unregister(broken)
    assert [e["data"]["worker_id"] for e in received] == ["w-2"]


@pytest.fixture
def batches():
    got: list[list[dict]] = []
    events.batch_sink_register(got.append)
    yield got
    events.batch_sink_unregister(got.append)


def test_events_of_one_transaction_are_delivered_as_one_batch(transactional_db, batches):
    with transaction.atomic():
        events.publish("worker.online", worker_id="w-1")
        events.publish_many("worker.online", [{"worker_id": "w-2"}, {"worker_id": "w-3"}])
        events.publish("worker.online", worker_id="w-4")
    assert [[e["data"]["worker_id"] for e in batch] for batch in batches] == [["w-1", "w-2", "w-3", "w-4"]]


def test_a_rolled_back_savepoint_drops_only_its_own_events(transactional_db, batches):
    with transaction.atomic():
        events.publish("worker.online", worker_id="outer-1")
        with pytest.raises(RuntimeError), transaction.atomic():
            events.publish("worker.online", worker_id="inner")
            raise RuntimeError("roll back the savepoint")
        events.publish("worker.online", worker_id="outer-2")
    delivered = [e["data"]["worker_id"] for batch in batches for e in batch]
    assert delivered == ["outer-1", "outer-2"]


def test_a_committed_savepoint_keeps_its_events(transactional_db, batches):
    with transaction.atomic():
        events.publish("worker.online", worker_id="outer")
        with transaction.atomic():
            events.publish("worker.online", worker_id="inner")
    assert sorted(e["data"]["worker_id"] for batch in batches for e in batch) == ["inner", "outer"]


def test_outside_a_transaction_each_event_is_delivered_at_once(transactional_db, batches):
    events.publish("worker.online", worker_id="a")
    assert len(batches) == 1
    events.publish("worker.online", worker_id="b")
    assert len(batches) == 2
