"""The publishing side of the live monitor: committed events pushed to the `monitor` Channels group.

`live_sink` is the batch sink leadops registers with core/events.py (leadops/apps.py); in a server
process `Publisher` sends from the event loop so the request that committed never waits for the
channel layer (docs/PERFORMANCE.md, "The fixed cost of a request"). The viewing side, which takes
events from the group and the outbox, is leadops/live.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from core import events
from leadops.live import GROUP, HEARTBEAT_FLUSH_S

logger = logging.getLogger("leadops.live")


def live_sink(batch: list[dict[str, Any]]) -> None:
    """The batch sink leadops registers: push one commit's events (stored, with ids) to the group.

    The events were written to the outbox in the transaction that committed them; this push only
    makes them reach viewers at once. If it never happens (the process died after COMMIT, Redis
    was down), each hub's catch-up reads them from the outbox within CATCH_UP_S.

    In a server process the push is handed to the event loop and the request goes on (`publisher`);
    elsewhere (the qcluster, a management command, the test client) it is sent before returning.
    """
    if publisher.push(batch):
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(GROUP, {"type": "monitor.events", "events": batch})


class Publisher:
    """Sends committed events to the group from the server's event loop, several commits a message.

    A request thread used to wait for its own `group_send` (a Redis round trip and a Lua script on
    the loop) after every commit. Now the thread appends its batch and returns; one task on the loop
    drains what is pending, so commits that land while a send is in flight go together in the next
    message. Heartbeats, which viewers are shown coalesced once a second anyway, are coalesced here
    too: the latest of each worker goes out once every HEARTBEAT_FLUSH_S, whatever the fleet's
    size (docs/PERFORMANCE.md, "The fixed cost of a request"). Nothing is lost by this: viewers
    catch up on stored events from the outbox.
    """

    MOST_PER_MESSAGE = 500

    def __init__(self, heartbeat_flush_s: float = HEARTBEAT_FLUSH_S) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.heartbeat_flush_s = heartbeat_flush_s
        self._pending: list[dict[str, Any]] = []
        self._heartbeats: dict[str, dict[str, Any]] = {}
        self._draining = False
        self._heartbeat_flush_due = False
        self._lock = threading.Lock()
        self._task: asyncio.Future[None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop of the server process this module runs in (called by `publishing`)."""
        if self.loop is not loop:
            # A new loop (a server restarted in this process, a test's loop): the old loop's timer and
            # drain will never run, so nothing may wait for them, and what they held is dropped (stored
            # events reach viewers from the outbox; a heartbeat is only shown, and is stale by now).
            with self._lock:
                self.loop = loop
                self._draining = self._heartbeat_flush_due = False
                self._pending.clear()
                self._heartbeats.clear()

    def push(self, batch: list[dict[str, Any]]) -> bool:
        """Queue `batch` for the loop; False when there is no running loop to hand it to."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return False
        try:
            # Called on the loop itself (the heartbeat's async lane): queued the same way.
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        wake: list[Any] = []
        with self._lock:
            for event in batch:
                if event["type"] in events.EPHEMERAL_TYPES:
                    self._heartbeats[event["data"]["worker_id"]] = event
                else:
                    self._pending.append(event)
            if self._heartbeats and not self._heartbeat_flush_due:
                self._heartbeat_flush_due = True
                wake.append(self._heartbeats_later)
            if self._pending and not self._draining:
                self._draining = True
                wake.append(self._start_drain)
        try:
            for callback in wake:
                (loop.call_soon if on_loop else loop.call_soon_threadsafe)(callback)
        except RuntimeError:  # the loop closed since the check
            with self._lock:
                self._draining = self._heartbeat_flush_due = False
                self._pending.clear()
                self._heartbeats.clear()
            return False
        return True

    def _heartbeats_later(self) -> None:
        asyncio.get_running_loop().call_later(self.heartbeat_flush_s, self._heartbeats_flush)

    def _heartbeats_flush(self) -> None:
        with self._lock:
            self._pending.extend(self._heartbeats.values())
            self._heartbeats.clear()
            self._heartbeat_flush_due = False
            if self._draining or not self._pending:
                return
            self._draining = True
        self._start_drain()

    def _start_drain(self) -> None:
        self._task = asyncio.ensure_future(self._drain())  # held: the loop keeps only a weak reference

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            with self._lock:
                batch = self._pending[: self.MOST_PER_MESSAGE]
                del self._pending[: self.MOST_PER_MESSAGE]
                if not batch:
                    self._draining = False
                    return
            if layer is None:
                continue
            try:
                await layer.group_send(GROUP, {"type": "monitor.events", "events": batch})
            except Exception:
                # Viewers read these from the outbox within CATCH_UP_S (heartbeats are only shown).
                logger.exception("monitor push failed for %d events", len(batch))


publisher = Publisher()


def publishing(app: Any) -> Any:
    """ASGI wrapper: tells `publisher` which event loop serves this process."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        publisher.attach(asyncio.get_running_loop())
        await app(scope, receive, send)

    return application
