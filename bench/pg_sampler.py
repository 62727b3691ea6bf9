"""What the portal's PostgreSQL sessions wait on during a fleet step (issue 27, item 1).

A thread in the bench process samples every 100 ms, on its own connection:

- `pg_stat_activity` of the bench database's client backends: how many are active, and what each
  active one waits on (`wait_event_type:wait_event`, or `CPU` when it waits on nothing), plus how
  many sit `idle in transaction` (a transaction held open across Python work);
- `pg_locks`: how many lock requests of those backends are not granted, and when some are, the
  head of each statement that waits on a lock (literals blanked), so the row everyone queues on can
  be named.

The step gets a histogram of backend-samples per wait (`pg_waits`) and the most lock waits seen at
once (`locks_waiting_max`). The sampler's own backend is left out.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

import psycopg

from bench import common

INTERVAL_S = 0.1

_ACTIVITY = """
SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), count(*)
FROM pg_stat_activity
WHERE datname = %(db)s AND backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2, 3
"""
_LOCK_WAITERS = """
SELECT left(query, 160) FROM pg_stat_activity
WHERE datname = %(db)s AND state = 'active' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
"""
_LOCKS = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = %(db)s
"""


class PgSampler(threading.Thread):
    def __init__(self, database: str, interval_s: float = INTERVAL_S) -> None:
        super().__init__(daemon=True, name="pg-sampler")
        self.database, self.interval_s = database, interval_s
        self._stop_event = threading.Event()
        self.waits: Counter[str] = Counter()
        self.lock_waiters: Counter[str] = Counter()
        self.samples = 0
        self.active: list[int] = []
        self.idle_in_transaction_max = 0
        self.backends_max = 0
        self.locks_waiting_max = 0
        self.locks_waiting_samples = 0
        self.failure: str | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(common.dsn(self.database), autocommit=True) as conn:
                while not self._stop_event.is_set():
                    started = time.monotonic()
                    self._sample(conn)
                    self._stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        except Exception as exc:       # a sampler failure must not end the step
            self.failure = f"{type(exc).__name__}: {exc}"

    def _sample(self, conn: psycopg.Connection) -> None:
        params = {"db": self.database}
        rows = conn.execute(_ACTIVITY, params).fetchall()
        locks = conn.execute(_LOCKS, params).fetchone()[0]
        for (query,) in conn.execute(_LOCK_WAITERS, params).fetchall() if locks else ():
            # The statement's head with its literals blanked: which statement waits, not its values.
            self.lock_waiters[re.sub(r"'[^']*'|\b\d+\b", "?", " ".join((query or "").split()))[:120]] += 1
        active = backends = idle_tx = 0
        for state, wait_type, wait_event, count in rows:
            backends += count
            if state == "active":
                active += count
                self.waits[f"{wait_type}:{wait_event}" if wait_type else "CPU"] += count
            elif state and state.startswith("idle in transaction"):
                idle_tx += count
        self.samples += 1
        self.active.append(active)
        self.backends_max = max(self.backends_max, backends)
        self.idle_in_transaction_max = max(self.idle_in_transaction_max, idle_tx)
        self.locks_waiting_max = max(self.locks_waiting_max, locks)
        self.locks_waiting_samples += 1 if locks else 0

    def stop(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join(timeout=5)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        samples = self.samples or 1
        return {
            "samples": self.samples, "interval_s": self.interval_s,
            "active_mean": round(sum(self.active) / samples, 2), "active_max": max(self.active, default=0),
            "backends_max": self.backends_max, "idle_in_transaction_max": self.idle_in_transaction_max,
            # backend-samples per wait: divide by `samples` for the mean number of backends waiting so
            "by_wait": dict(self.waits.most_common()),
            "lock_waiters_by_statement": dict(self.lock_waiters.most_common(8)),
            "locks_waiting_max": self.locks_waiting_max, "locks_waiting_samples": self.locks_waiting_samples,
            "failure": self.failure,
        }
