"""Monitor events leave a request thread without waiting for the channel layer (leadops/live_publish.py).

The server's event loop runs in its own thread here, as daphne's does; the "request" is this test's
thread. docs/PERFORMANCE.md, "The fixed cost of a request".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from channels.layers import get_channel_layer

from leadops import live, live_publish


@pytest.fixture(autouse=True)
def _own_group(monkeypatch):
    # The channel layer may be a Redis shared with other test processes publishing to the monitor's
    # group: this test's pushes and reads go to a group of its own.
    import uuid

    name = f"monitor-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(live, "GROUP", name)
    monkeypatch.setattr(live_publish, "GROUP", name)


@pytest.fixture
def server_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def on_loop(loop: asyncio.AbstractEventLoop, coro, timeout: float = 5.0):
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def subscribe(loop: asyncio.AbstractEventLoop) -> str:
    layer = get_channel_layer()

    async def join() -> str:
        channel = await layer.new_channel()
        await layer.group_add(live.GROUP, channel)
        return channel

    return on_loop(loop, join())


def event(n: int) -> dict:
    return {"type": "job.claimed", "id": n, "at": "2026-01-01T00:00:00+00:00", "data": {"n": n}}


def test_the_push_returns_at_once_and_commits_that_meet_go_in_one_message(server_loop):
    channel = subscribe(server_loop)
    publisher = live_publish.Publisher()
    publisher.attach(server_loop)
    # The loop is busy for 300 ms (another request's work): pushes must not wait for it.
    server_loop.call_soon_threadsafe(time.sleep, 0.3)
    started = time.monotonic()
    for n in range(1, 6):
        assert publisher.push([event(n)]) is True
    assert time.monotonic() - started < 0.1

    layer = get_channel_layer()
    message = on_loop(server_loop, layer.receive(channel))
    assert message["type"] == "monitor.events"
    assert [e["id"] for e in message["events"]] == [1, 2, 3, 4, 5]
    on_loop(server_loop, layer.group_discard(live.GROUP, channel))


def test_the_live_sink_delivers_through_the_attached_loop(server_loop):
    channel = subscribe(server_loop)
    live_publish.publisher.attach(server_loop)
    try:
        live_publish.live_sink([event(7)])
        message = on_loop(server_loop, get_channel_layer().receive(channel))
        assert [e["id"] for e in message["events"]] == [7]
    finally:
        live_publish.publisher.loop = None
    on_loop(server_loop, get_channel_layer().group_discard(live.GROUP, channel))


def test_a_large_backlog_is_split_into_bounded_messages(server_loop):
    channel = subscribe(server_loop)
    publisher = live_publish.Publisher()
    publisher.attach(server_loop)
    server_loop.call_soon_threadsafe(time.sleep, 0.2)
    total = live_publish.Publisher.MOST_PER_MESSAGE + 20
    assert publisher.push([event(n) for n in range(1, total + 1)])
    layer = get_channel_layer()
    first = on_loop(server_loop, layer.receive(channel))
    second = on_loop(server_loop, layer.receive(channel))
    assert len(first["events"]) == live_publish.Publisher.MOST_PER_MESSAGE
    assert [e["id"] for e in first["events"] + second["events"]] == list(range(1, total + 1))
    on_loop(server_loop, layer.group_discard(live.GROUP, channel))


def test_without_a_running_server_loop_the_sink_sends_itself():
    publisher = live_publish.Publisher()
    assert publisher.push([event(1)]) is False
    stopped = asyncio.new_event_loop()
    publisher.attach(stopped)
    assert publisher.push([event(1)]) is False
    stopped.close()


def heartbeat(worker_id: str, running_jobs: int) -> dict:
    return {"type": "worker.heartbeat", "at": "2026-01-01T00:00:00+00:00",
            "data": {"worker_id": worker_id, "version": "1", "status": "ok", "running_jobs": running_jobs}}


def test_heartbeats_are_coalesced_to_the_latest_of_each_worker_once_per_interval(server_loop):
    channel = subscribe(server_loop)
    publisher = live_publish.Publisher(heartbeat_flush_s=0.2)
    publisher.attach(server_loop)
    for n in range(50):
        assert publisher.push([heartbeat("w-1", n), heartbeat("w-2", 100 + n)])
    assert publisher.push([event(9)])  # a stored event does not wait for the heartbeats' interval

    layer = get_channel_layer()
    first = on_loop(server_loop, layer.receive(channel))
    assert [e["id"] for e in first["events"]] == [9]
    second = on_loop(server_loop, layer.receive(channel))
    latest = {e["data"]["worker_id"]: e["data"]["running_jobs"] for e in second["events"]}
    assert latest == {"w-1": 49, "w-2": 149}

    # The next heartbeat starts a new interval.
    assert publisher.push([heartbeat("w-1", 7)])
    third = on_loop(server_loop, layer.receive(channel))
    assert [e["data"]["running_jobs"] for e in third["events"]] == [7]
    on_loop(server_loop, layer.group_discard(live.GROUP, channel))


def test_a_push_made_on_the_loop_itself_is_queued_and_sent(server_loop):
    """The heartbeat's async lane publishes from the loop (workers_mgmt/heartbeat_lane.py)."""
    channel = subscribe(server_loop)
    publisher = live_publish.Publisher(heartbeat_flush_s=0.1)
    publisher.attach(server_loop)

    async def from_the_loop() -> bool:
        return publisher.push([heartbeat("w-loop", 3)])

    assert on_loop(server_loop, from_the_loop()) is True
    sent = on_loop(server_loop, get_channel_layer().receive(channel))
    assert [e["data"]["worker_id"] for e in sent["events"]] == ["w-loop"]
    on_loop(server_loop, get_channel_layer().group_discard(live.GROUP, channel))


def test_a_new_loop_drops_what_a_gone_loop_held():
    publisher = live_publish.Publisher(heartbeat_flush_s=60)

    async def push_and_end() -> None:
        publisher.attach(asyncio.get_running_loop())
        assert publisher.push([heartbeat("w-gone", 1)])

    asyncio.run(push_and_end())  # the loop ends before the flush: its timer never runs
    fresh = asyncio.new_event_loop()
    try:
        publisher.attach(fresh)
        # Nothing stale reaches the next loop's viewers, and the next heartbeat schedules its own flush.
        assert publisher._heartbeats == {} and publisher._heartbeat_flush_due is False
    finally:
        fresh.close()
