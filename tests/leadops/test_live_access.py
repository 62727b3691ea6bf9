"""Only staff sessions may watch the live stream (WebSocket and SSE) or scrape /metrics."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import AsyncClient

from core import events
from leadops.asgi import application

pytestmark = pytest.mark.usefixtures("fresh_layer")


def _ws(client=None, user=None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if user is not None:
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, "/ws/monitor/", headers=headers)


async def _close_code(communicator: WebsocketCommunicator) -> int | None:
    connected, code = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return None if connected else code


def test_websocket_refuses_anonymous(transactional_db):
    assert async_to_sync(_close_code)(_ws()) == 4401


def test_websocket_refuses_non_staff(transactional_db, client, plain_user):
    assert async_to_sync(_close_code)(_ws(client, plain_user)) == 4403


def _publish_online(worker_id: str) -> None:
    with transaction.atomic():
        events.publish("worker.online", worker_id=worker_id)


def test_websocket_staff_receives_committed_event(transactional_db, client, staff_user):
    communicator = _ws(client, staff_user)

    async def scenario():
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        await database_sync_to_async(_publish_online)("w-live")
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = async_to_sync(scenario)()
    assert message["type"] == "worker.online"
    assert message["data"] == {"worker_id": "w-live"}
    assert isinstance(message["id"], int)


def test_sse_refuses_anonymous_with_401_in_the_error_shape(client):
    response = client.get("/api/v1/monitor/events")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_sse_refuses_non_staff_with_403(client, plain_user):
    client.force_login(plain_user)
    response = client.get("/api/v1/monitor/events")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_sse_refuses_a_bad_last_event_id(client, staff_user):
    client.force_login(staff_user)
    response = client.get("/api/v1/monitor/events", headers={"Last-Event-ID": "abc"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


async def _read_sse(client: AsyncClient, *, want: int, **kwargs) -> list[dict]:
    response = await client.get("/api/v1/monitor/events", **kwargs)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    got: list[dict] = []
    stream = response.streaming_content
    buffer = ""
    try:
        async with asyncio.timeout(10):
            async for chunk in stream:
                buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                    if "data" in fields and "id" in fields:
                        got.append({"sse_id": int(fields["id"]), **json.loads(fields["data"])})
                if len(got) >= want:
                    break
    finally:
        await stream.aclose()
    return got


@pytest.mark.parametrize("how", ["header", "query"])
def test_sse_replays_after_last_event_id(transactional_db, staff_user, how):
    for index in range(5):
        _publish_online(f"w-{index}")
    from leadops.models import MonitorEvent

    ids = list(MonitorEvent.objects.order_by("id").values_list("id", flat=True))
    assert len(ids) == 5
    client = AsyncClient()
    if how == "header":
        kwargs = {"headers": {"Last-Event-ID": str(ids[1])}}
    else:
        kwargs = {"data": {"last_event_id": str(ids[1])}}

    async def scenario():
        await client.aforce_login(staff_user)
        return await _read_sse(client, want=3, **kwargs)

    got = async_to_sync(scenario)()
    assert [event["sse_id"] for event in got] == ids[2:]
    assert [event["data"]["worker_id"] for event in got] == ["w-2", "w-3", "w-4"]


def _publish_heartbeats(rounds: int, workers: int) -> None:
    for round_ in range(rounds):
        with transaction.atomic():
            for index in range(workers):
                events.publish("worker.heartbeat", worker_id=f"w-{index}", version="1", status="ok",
                               running_jobs=round_)


def test_websocket_viewer_gets_heartbeats_coalesced(transactional_db, client, staff_user):
    communicator = _ws(client, staff_user)

    async def scenario():
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        loop = asyncio.get_running_loop()
        started = loop.time()
        await database_sync_to_async(_publish_heartbeats)(3, 200)  # 600 heartbeats
        messages, latest = [], {}
        while not (len(latest) == 200 and set(latest.values()) == {2}) and loop.time() - started < 8:
            message = await communicator.receive_json_from(timeout=5)
            messages.append((loop.time(), message))
            latest.update({e["data"]["worker_id"]: e["data"]["running_jobs"] for e in message["events"]})
        quiet = await communicator.receive_nothing(timeout=1.2)  # nothing new: nothing more is sent
        await communicator.disconnect()
        return messages, latest, quiet

    messages, latest, quiet = async_to_sync(scenario)()
    assert len(latest) == 200 and set(latest.values()) == {2}  # the latest heartbeat of each worker
    assert quiet
    assert {message["type"] for _, message in messages} == {"worker.heartbeat.batch"}
    for _, message in messages:
        workers = [event["data"]["worker_id"] for event in message["events"]]
        assert len(workers) == len(set(workers)) <= 200  # one entry per worker in a batch
    # 600 heartbeats became a few batches: at most one a second (the interval itself is unit-tested in
    # test_live_events; receive times here include the wait while the test was publishing).
    assert len(messages) <= 3


def test_websocket_resumes_after_last_event_id(transactional_db, client, staff_user):
    for index in range(3):
        _publish_online(f"w-{index}")
    from leadops.models import MonitorEvent

    ids = list(MonitorEvent.objects.order_by("id").values_list("id", flat=True))
    client.force_login(staff_user)
    communicator = WebsocketCommunicator(
        application, f"/ws/monitor/?last_event_id={ids[0]}",
        headers=[(b"origin", b"http://testserver"), (b"host", b"testserver"),
                 (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])

    async def scenario():
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        got = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return got

    assert [event["id"] for event in async_to_sync(scenario)()] == ids[1:]
