"""Live delivery of monitor events: the outbox (replay log) + Channels group, WebSocket, SSE stream.

Every event is written to the outbox (`MonitorEvent`) in the transaction of the change it
describes (core/events.py); after the commit the publishing process pushes the batch, with its
ids, to the `monitor` Channels group in one message (leadops/live_publish.py). Each server process
runs one hub: the hub is the group's only member in that process, takes events from the group for
low latency and also reads the outbox once a second (with the in-memory layer of `make run` an
event published by another process, the qcluster's reaper, never reaches daphne through the layer;
and a process that died
between its COMMIT and its push loses nothing: the outbox carries it). Ids tell the two paths
apart, so no event is shown twice. Ids are taken at INSERT and become visible at COMMIT, so a lower
id can appear after a higher one: the cursor (`ReplayCursor`) keeps the missing ids below the
highest it has seen and re-reads them for GAP_WAIT_S before passing them (docs/SYSTEM_OVERVIEW.md,
"Live monitor"). The hub encodes each event once and hands it
to every local viewer (WebSocket or SSE), so 100 viewers cost one Redis message and one JSON
encoding per event, not 100.

Heartbeats are ephemeral (not stored) and coalesced: at most one batch a second carrying the latest
heartbeat of each worker reaches a viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from core import events
from core.errors import error_response

logger = logging.getLogger(__name__)

GROUP = "monitor"
CATCH_UP_S = 1.0
HEARTBEAT_FLUSH_S = 1.0
# How long a missing id (a slower transaction's event) is waited for before the cursor passes it.
GAP_WAIT_S = 5.0
SSE_KEEPALIVE_S = 15.0


# --- one viewer's bookkeeping -------------------------------------------------------------------


class ReplayCursor:
    """Which stored ids a viewer has had: everything <= `position`, plus `ahead` above it."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.ahead: set[int] = set()
        self.missing_since: dict[int, float] = {}

    def accept(self, event_id: int) -> bool:
        """True the first time an id is seen (deliver it), False for a repeat."""
        if event_id <= self.position or event_id in self.ahead:
            return False
        self.ahead.add(event_id)
        self.missing_since.pop(event_id, None)
        self._advance(time.monotonic())
        return True

    def missing(self) -> list[int]:
        return sorted(self.missing_since)

    def _advance(self, now: float) -> None:
        while True:
            nxt = self.position + 1
            if nxt in self.ahead:
                self.ahead.discard(nxt)
                self.position = nxt
            elif self.ahead and nxt in self.missing_since and now - self.missing_since[nxt] > GAP_WAIT_S:
                del self.missing_since[nxt]  # rolled back or very late: stop waiting for it
                self.position = nxt
            else:
                break
        if self.ahead:
            for gap in range(self.position + 1, max(self.ahead)):
                if gap not in self.ahead:
                    self.missing_since.setdefault(gap, now)

    def tick(self) -> None:
        self._advance(time.monotonic())


class HeartbeatCoalescer:
    """The latest heartbeat per worker, handed out at most once per interval."""

    def __init__(self, interval_s: float = HEARTBEAT_FLUSH_S) -> None:
        self.interval_s = interval_s
        self.latest: dict[str, dict[str, Any]] = {}
        self.last_flush = 0.0

    def add(self, event: dict[str, Any]) -> None:
        self.latest[event["data"]["worker_id"]] = event

    def due(self, now: float | None = None) -> list[dict[str, Any]] | None:
        now = time.monotonic() if now is None else now
        if not self.latest or now - self.last_flush < self.interval_s:
            return None
        batch, self.latest, self.last_flush = list(self.latest.values()), {}, now
        return batch


class Viewer:
    """Turns incoming events (from the group or the log) into what one viewer is sent."""

    def __init__(self, position: int) -> None:
        self.cursor = ReplayCursor(position)
        self.heartbeats = HeartbeatCoalescer()

    def take(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for event in batch:
            if event["type"] in events.EPHEMERAL_TYPES:
                self.heartbeats.add(event)
            elif "id" not in event or self.cursor.accept(event["id"]):
                out.append(event)
        return out

    async def catch_up(self) -> list[dict[str, Any]]:
        from leadops.selectors import monitor_events_after

        self.cursor.tick()
        rows = await database_sync_to_async(monitor_events_after)(
            after_id=self.cursor.position, ids=self.cursor.missing()
        )
        return self.take(rows)

    def heartbeat_batch(self) -> dict[str, Any] | None:
        batch = self.heartbeats.due()
        if batch is None:
            return None
        return {"type": "worker.heartbeat.batch", "events": batch}


def _refusal(user: Any) -> tuple[int, str, str] | None:
    if user is None or not user.is_authenticated:
        return 401, "unauthorized", "Log in as staff to watch the monitor stream."
    if not (user.is_active and user.is_staff):
        return 403, "forbidden", "The monitor stream is for staff only."
    return None


# --- one hub per server process -----------------------------------------------------------------

# What a subscriber receives: the event (or heartbeat batch) and its JSON text, encoded once.
Item = tuple[dict[str, Any], str]
QUEUE_LIMIT = 5000


class Subscription:
    """One viewer's queue on the hub; `overflowed` when the viewer fell QUEUE_LIMIT items behind."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self.overflowed = False

    def put(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class Hub:
    """The process's single member of the group: receives, catches up, coalesces, fans out."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.subscriptions: set[Subscription] = set()
        self.task: asyncio.Task | None = None
        self.started = asyncio.Event()

    async def subscribe(self) -> Subscription:
        subscription = Subscription()
        self.subscriptions.add(subscription)
        if self.task is None or self.task.done():
            # Created before any await, so viewers connecting at the same moment share one hub task.
            self.started = asyncio.Event()
            self.task = asyncio.create_task(self._run(self.started))
        await self.started.wait()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)
        if not self.subscriptions and self.task is not None and not self.task.done():
            self.task.cancel()  # the last viewer left: leave the group now, not at the next tick

    def _broadcast(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            encoded = json.dumps(item, separators=(",", ":"))
            for subscription in list(self.subscriptions):
                subscription.put((item, encoded))

    async def _run(self, started: asyncio.Event) -> None:
        from leadops.selectors import monitor_event_last_id

        try:
            position = await database_sync_to_async(monitor_event_last_id)()
            layer = get_channel_layer()
            channel = await layer.new_channel()
            await layer.group_add(GROUP, channel)
        finally:
            started.set()  # waiting viewers go on; on a failure the next subscriber starts a new hub
        viewer = Viewer(position)
        # Receiving runs on its own and is never cancelled mid-call (a cancelled receive of the Redis
        # layer costs a round trip and may drop a message); the tick catches up and flushes heartbeats.
        receiver = asyncio.create_task(self._receive(layer, channel, viewer))
        loop_closing = False
        try:
            last_catch_up = time.monotonic()
            while self.subscriptions and not receiver.done():
                await asyncio.sleep(0.25)
                out: list[dict[str, Any]] = []
                now = time.monotonic()
                if now - last_catch_up >= CATCH_UP_S:
                    last_catch_up = now
                    try:
                        out += await viewer.catch_up()
                    except Exception:
                        logger.exception("monitor hub catch-up failed")
                batch = viewer.heartbeat_batch()
                if batch is not None:
                    out.append(batch)
                if out:
                    self._broadcast(out)
        except GeneratorExit:
            loop_closing = True  # the event loop is going away (a test's loop): nothing to clean up
            raise
        finally:
            if not loop_closing:
                receiver.cancel()
                with contextlib.suppress(Exception):
                    await layer.group_discard(GROUP, channel)
            if not loop_closing and self.subscriptions and self.task is asyncio.current_task():
                # A viewer arrived while this hub was winding down: hand over to a new one.
                self.started = asyncio.Event()
                self.task = asyncio.create_task(self._run(self.started))

    async def _receive(self, layer: Any, channel: str, viewer: Viewer) -> None:
        while True:
            message = await layer.receive(channel)
            try:
                out = viewer.take(message.get("events", []))
            except Exception:
                logger.exception("monitor hub got a malformed message")
                continue
            if out:
                self._broadcast(out)


_hubs: dict[int, Hub] = {}


def hub() -> Hub:
    """This event loop's hub (daphne has one loop; tests run one per test)."""
    loop = asyncio.get_running_loop()
    current = _hubs.get(id(loop))
    if current is None or current.loop is not loop:
        for key in [key for key, value in _hubs.items() if value.loop.is_closed()]:
            del _hubs[key]
        current = _hubs[id(loop)] = Hub(loop)
    return current


class Stream:
    """One viewer: optional replay from the log, then the hub's items, each stored id once."""

    def __init__(self, position: int) -> None:
        self.cursor = ReplayCursor(position)
        self.subscription: Subscription | None = None

    async def open(self, *, replay: bool) -> list[Item]:
        self.subscription = await hub().subscribe()
        if not replay:
            return []
        from leadops.selectors import monitor_events_after

        rows = await database_sync_to_async(monitor_events_after)(after_id=self.cursor.position, limit=5000)
        fresh = [row for row in rows if self.cursor.accept(row["id"])]
        return [(row, json.dumps(row, separators=(",", ":"))) for row in fresh]

    def close(self) -> None:
        if self.subscription is not None:
            hub().unsubscribe(self.subscription)

    async def next(self, timeout: float | None = None) -> list[Item]:
        """Wait for the next item(s); [] on timeout. Raises OverflowError when the viewer fell behind."""
        assert self.subscription is not None
        queue = self.subscription.queue
        if self.subscription.overflowed:
            raise OverflowError("viewer fell behind")
        try:
            first = await asyncio.wait_for(queue.get(), timeout=timeout)
        except TimeoutError:
            return []
        items = [first]
        while not queue.empty():
            items.append(queue.get_nowait())
        self.cursor.tick()
        return [(event, text) for event, text in items
                if "id" not in event or self.cursor.accept(event["id"])]


def _position(raw: str | None) -> int | None:
    """A Last-Event-ID: None when absent, -1 when malformed."""
    if raw is None or raw == "":
        return None
    return int(raw) if raw.isdigit() else -1


# --- WebSocket /ws/monitor/ ---------------------------------------------------------------------


class MonitorConsumer(AsyncJsonWebsocketConsumer):
    """Staff-only live stream: one JSON message per event, heartbeats as coalesced batches.

    `?last_event_id=N` resumes after event N (a reconnecting page); without it the stream starts now.
    Close codes: 4401 not logged in, 4403 not staff, 4008 the viewer fell too far behind (reconnect
    with last_event_id).
    """

    async def connect(self) -> None:
        refusal = _refusal(self.scope.get("user"))
        if refusal is not None:
            # 4401 / 4403: the HTTP status in the 4xxx range a browser sees as the close code.
            await self.close(code=4000 + refusal[0])
            return
        from leadops.selectors import monitor_event_last_id

        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        resume = _position((query.get("last_event_id") or [""])[0])
        replay = resume is not None and resume >= 0
        position = resume if replay else await database_sync_to_async(monitor_event_last_id)()
        self.stream = Stream(position)  # type: ignore[arg-type]
        replayed = await self.stream.open(replay=replay)
        await self.accept()
        for _, text in replayed:
            await self.send(text_data=text)
        self.pump = asyncio.create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        pump = getattr(self, "pump", None)
        if pump is not None:
            pump.cancel()
        stream = getattr(self, "stream", None)
        if stream is not None:
            stream.close()

    async def _pump(self) -> None:
        try:
            while True:
                for _, text in await self.stream.next():
                    await self.send(text_data=text)
        except OverflowError:
            await self.close(code=4008)


# --- SSE GET /api/v1/monitor/events --------------------------------------------------------------


def _sse(event: dict[str, Any], text: str) -> str:
    head = f"id: {event['id']}\n" if "id" in event else ""
    return f"{head}event: {event['type']}\ndata: {text}\n\n"


async def _sse_stream(stream: Stream) -> AsyncIterator[str]:
    try:
        replayed = await stream.open(replay=True)
        yield "retry: 2000\n\n" + "".join(_sse(event, text) for event, text in replayed)
        last_sent = time.monotonic()
        while True:
            try:
                items = await stream.next(timeout=SSE_KEEPALIVE_S)
            except OverflowError:
                return  # the browser reconnects with Last-Event-ID and replays from the log
            now = time.monotonic()
            if items:
                last_sent = now
                yield "".join(_sse(event, text) for event, text in items)
            elif now - last_sent >= SSE_KEEPALIVE_S:
                last_sent = now
                yield ": keep-alive\n\n"
    finally:
        stream.close()


async def monitor_events_sse(request: HttpRequest) -> HttpResponse:
    """Server-Sent Events for staff; `Last-Event-ID` (or `?last_event_id=`) replays from the log."""
    if request.method != "GET":
        return error_response("method_not_allowed", "Use GET.", 405)
    refusal = _refusal(await request.auser())
    if refusal is not None:
        status, code, message = refusal
        return error_response(code, message, status)
    last_id = _position(request.headers.get("Last-Event-ID") or request.GET.get("last_event_id"))
    if last_id == -1:
        return error_response("malformed_request", "Last-Event-ID must be a non-negative integer.", 400)
    if last_id is None:
        from leadops.selectors import monitor_event_last_id

        last_id = await database_sync_to_async(monitor_event_last_id)()
    response = StreamingHttpResponse(_sse_stream(Stream(last_id)), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response  # type: ignore[return-value]
