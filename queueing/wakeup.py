"""Wake waiting long polls when work turns ready (docs/API.md, "Long poll"; docs/PERFORMANCE.md).

A long poll waits in the server process's event loop (`queueing/long_poll.py`), holding no thread and
no database connection. This module tells the waiters of one process when to try a claim again:

- On PostgreSQL, a trigger on `queueing_job` (migration `queueing 0008`) sends `NOTIFY
  leadops_job_ready` when a row becomes `queued` and ready now, on every path that makes one (an
  enqueue, a release, the reaper, a requeue from the DLQ, raw SQL). The notification arrives when
  that transaction commits. One connection per process LISTENs; no waiter holds one.
- In every process, an enqueue or a release made by that process wakes its own waiters on commit
  (the only signal on SQLite, where a development portal runs one process).
- A probe: every LEADOPS_LONG_POLL_PROBE_S seconds the longest waiter of the process tries anyway.
  Jobs whose backoff ended, a breaker that closed or a quota that refilled send no notification;
  the probe finds them within that period.

A wake-up wakes a few waiters, oldest first, not all of them: one new job must not send every
waiting worker of the process to the database. A waiter that got a job wakes the next one, so a
burst of jobs spreads across the waiters as fast as they claim.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger("leadops.queue")

CHANNEL = "leadops_job_ready"
# Waiters woken by one notification; each that claims a job wakes one more.
WAKE_FIRST = 2


class Waker:
    """The waiting long polls of this process, oldest first, and what wakes them."""

    def __init__(self) -> None:
        self._waiters: collections.OrderedDict[int, asyncio.Event] = collections.OrderedDict()
        self._next_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.listening = False

    # --- waiting (event loop only) ---------------------------------------------------------------

    async def wait(self, timeout: float) -> bool:
        """Wait until woken (True) or `timeout` seconds passed (False)."""
        self._start()
        event = asyncio.Event()
        self._next_id += 1
        key = self._next_id
        self._waiters[key] = event
        try:
            await asyncio.wait_for(event.wait(), timeout=max(0.0, timeout))
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters.pop(key, None)

    def wake(self, count: int = WAKE_FIRST) -> int:
        """Wake up to `count` waiters, the longest waiting first; how many were woken."""
        woken = 0
        while woken < count and self._waiters:
            _, event = self._waiters.popitem(last=False)
            event.set()
            woken += 1
        return woken

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # --- from any thread ---------------------------------------------------------------------------

    def wake_threadsafe(self, count: int = WAKE_FIRST) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake, count)

    # --- the listener and the probe -------------------------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._tasks = [loop.create_task(self._probe())]
        if connection.vendor == "postgresql":
            self._tasks.append(loop.create_task(self._listen()))

    async def _probe(self) -> None:
        while True:
            await asyncio.sleep(settings.LEADOPS_LONG_POLL_PROBE_S)
            self.wake(1)

    async def _listen(self) -> None:
        import psycopg

        pause = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    listen_conninfo(), autocommit=True, application_name="leadops-listen"
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening, pause = True, 0.5
                    # Work that turned ready while this process was not listening.
                    self.wake()
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database restarted or is out of reach: listen again
                logger.warning("job wake-ups: listening failed (%s); the probe still runs", exc)
            self.listening = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)


def listen_conninfo() -> str:
    """A libpq connection string for the default database, from its Django settings."""
    from psycopg.conninfo import make_conninfo

    db = settings.DATABASES["default"]
    params = {"dbname": db.get("NAME"), "user": db.get("USER"), "password": db.get("PASSWORD"),
              "host": db.get("HOST"), "port": db.get("PORT")}
    for name in ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"):
        if name in (db.get("OPTIONS") or {}):
            params[name] = db["OPTIONS"][name]
    return make_conninfo(**{name: str(value) for name, value in params.items() if value not in (None, "")})


waker = Waker()


def jobs_ready_announce() -> None:
    """Wake this process's waiters when the current transaction commits (at once outside one).

    Other processes hear of the same jobs from the database trigger (PostgreSQL) or their probe.
    """
    transaction.on_commit(waker.wake_threadsafe)
