"""Live delivery of monitor events: replay log + Channels group, WebSocket consumer, SSE stream.

Every committed batch is stored in the replay log (one INSERT, ids increasing) and pushed to the
`monitor` Channels group in one message. A viewer takes events from the group for low latency and
also catches up from the log once a second: with the in-memory layer (`make run`) an event
published by another process (the qcluster's reaper) never reaches daphne through the layer, and
the log is what carries it. Ids tell the two paths apart, so no event is shown twice.

Heartbeats are ephemeral (not stored) and coalesced per viewer: at most one batch a second carrying
the latest heartbeat of each worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from leadops import events
from leadops.errors import error_response

logger = logging.getLogger(__name__)

GROUP = "monitor"
CATCH_UP_S = 1.0
HEARTBEAT_FLUSH_S = 1.0
# How long a missing id (a slower transaction's event) is waited for before the cursor passes it.
GAP_WAIT_S = 5.0
SSE_KEEPALIVE_S = 15.0


# --- publishing side ----------------------------------------------------------------------------


def live_sink(batch: list[dict[str, Any]]) -> None:
    """The batch sink leadops registers: store the durable events, then push the batch to the group."""
    from leadops.services import monitor_events_store

    monitor_events_store(batch=batch)
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(GROUP, {"type": "monitor.events", "events": batch})


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


# --- WebSocket /ws/monitor/ ---------------------------------------------------------------------


class MonitorConsumer(AsyncJsonWebsocketConsumer):
    """Staff-only live stream: one JSON message per event, heartbeats as coalesced batches."""

    async def connect(self) -> None:
        refusal = _refusal(self.scope.get("user"))
        if refusal is not None:
            # 4401 / 4403: the HTTP status in the 4xxx range a browser sees as the close code.
            await self.close(code=4000 + refusal[0])
            return
        from leadops.selectors import monitor_event_last_id

        # A reconnecting page resumes where it left off (`?last_event_id=`); a new one starts now.
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        resume = (query.get("last_event_id") or [""])[0]
        if resume.isdigit():
            position = int(resume)
        else:
            position = await database_sync_to_async(monitor_event_last_id)()
        self.viewer = Viewer(position)
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        self.ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        ticker = getattr(self, "ticker", None)
        if ticker is not None:
            ticker.cancel()
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def monitor_events(self, message: dict[str, Any]) -> None:
        for event in self.viewer.take(message["events"]):
            await self.send_json(event)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(CATCH_UP_S, HEARTBEAT_FLUSH_S) / 2)
            try:
                now = time.monotonic()
                if now - getattr(self, "_caught_up", 0.0) >= CATCH_UP_S:
                    self._caught_up = now
                    for event in await self.viewer.catch_up():
                        await self.send_json(event)
                batch = self.viewer.heartbeat_batch()
                if batch is not None:
                    await self.send_json(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("monitor stream tick failed")


# --- SSE GET /api/v1/monitor/events --------------------------------------------------------------


def _sse(event: dict[str, Any]) -> str:
    lines = []
    if "id" in event:
        lines.append(f"id: {event['id']}")
    lines.append(f"event: {event['type']}")
    lines.append("data: " + json.dumps(event, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _last_event_id(request: HttpRequest) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        return -1
    return value if value >= 0 else -1


async def _sse_stream(viewer: Viewer) -> AsyncIterator[str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    try:
        yield "retry: 2000\n\n"
        for event in await viewer.catch_up():
            yield _sse(event)
        last_catch_up = last_sent = time.monotonic()
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout=0.5)
                out = viewer.take(message.get("events", []))
            except TimeoutError:
                out = []
            now = time.monotonic()
            if now - last_catch_up >= CATCH_UP_S:
                last_catch_up = now
                out += await viewer.catch_up()
            batch = viewer.heartbeat_batch()
            chunks = [_sse(event) for event in out]
            if batch is not None:
                chunks.append("event: worker.heartbeat.batch\ndata: "
                              + json.dumps(batch, separators=(",", ":")) + "\n\n")
            if not chunks and now - last_sent >= SSE_KEEPALIVE_S:
                chunks.append(": keep-alive\n\n")
            if chunks:
                last_sent = now
                yield "".join(chunks)
    finally:
        await layer.group_discard(GROUP, channel)


async def monitor_events_sse(request: HttpRequest) -> HttpResponse:
    """Server-Sent Events for staff; `Last-Event-ID` (or `?last_event_id=`) replays from the log."""
    if request.method != "GET":
        return error_response("method_not_allowed", "Use GET.", 405)
    refusal = _refusal(await request.auser())
    if refusal is not None:
        status, code, message = refusal
        return error_response(code, message, status)
    last_id = _last_event_id(request)
    if last_id == -1:
        return error_response("malformed_request", "Last-Event-ID must be a non-negative integer.", 400)
    if last_id is None:
        from leadops.selectors import monitor_event_last_id

        last_id = await database_sync_to_async(monitor_event_last_id)()
    response = StreamingHttpResponse(_sse_stream(Viewer(last_id)), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
