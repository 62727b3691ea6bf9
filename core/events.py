"""Monitor events: one place that names them and defines their fields, written to an outbox.

Services call `publish("job.succeeded", job_id=..., ...)` inside their transaction. The event row is
written in that same transaction (the outbox: the project registers the store, `store_register`),
so it commits or rolls back with the state change it describes, costs no commit of its own, and is
never lost when the process dies just after COMMIT. After the commit the stored events (now with
their ids) go to the registered sinks: the live-monitoring code pushes them to viewers at once, and
reads the outbox itself to catch up (docs/SYSTEM_OVERVIEW.md, "Live monitor").

A service that publishes several events in one transaction opens it with `events.atomic()`: the
events then wait and are stored in one INSERT just before that block commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventType:
    name: str
    fields: tuple[str, ...]
    description: str


# Each event's required fields. Publishers may not add others: viewers and docs rely on the shape.
EVENT_TYPES: dict[str, EventType] = {
    t.name: t
    for t in (
        EventType("job.claimed", ("job_id", "attempt_id", "attempt", "provider", "worker_id"),
                  "A worker leased a job."),
        EventType("job.succeeded",
                  ("job_id", "attempt", "provider", "worker_id", "added", "duplicates", "invalid"),
                  "A job finished successfully."),
        EventType("job.failed", ("job_id", "attempt", "provider", "worker_id", "error_code", "retry_at"),
                  "An attempt failed; the job waits for its backoff and runs again."),
        EventType("job.dead", ("job_id", "attempt", "provider", "worker_id", "reason"),
                  "A job reached the dead-letter queue."),
        EventType("leads.ingested", ("job_id", "provider", "worker_id", "added", "duplicates", "invalid"),
                  "A report's leads were ingested (every chunk, partial or final)."),
        EventType("worker.heartbeat", ("worker_id", "version", "status", "running_jobs"),
                  "A worker's heartbeat (coalesced for viewers)."),
        EventType("worker.online", ("worker_id",), "A worker was heard from after being offline or new."),
        EventType("worker.offline", ("worker_id", "last_heartbeat_at"), "A worker's heartbeat is overdue."),
        EventType("breaker.changed", ("scope", "key", "from_state", "to_state", "reason"),
                  "A circuit breaker changed state (scope: provider or worker)."),
        EventType("alert.firing", ("rule", "fingerprint", "labels", "summary"), "An alert started firing."),
        EventType("alert.resolved", ("rule", "fingerprint", "labels"), "A firing alert resolved."),
        EventType("staff.action", ("action", "actor", "object_type", "object_count", "staff_action_id"),
                  "A staff change was made and audited (the row is in admin: Audit > Staff actions)."),
        EventType("jobs.moved", ("action", "provider", "from_state", "to_state", "count"),
                  "A staff action moved jobs between states (from_state or to_state empty: created or"
                  " deleted), so the monitor's counters follow enqueue, cancel, requeue and purge."),
        EventType("rollout.changed", ("channel", "version", "from_state", "to_state"),
                  "A release rollout changed stage."),
    )
}

# Events that describe a state snapshot rather than a change: they go to live viewers (coalesced)
# but are not kept in the replay log, so 1,000 heartbeating workers cost no database writes.
EPHEMERAL_TYPES: frozenset[str] = frozenset({"worker.heartbeat"})

# Who receives committed events. The live-monitoring code registers its sink here (the Channels
# group); tests can register their own to observe what was published.
_sinks: list[Callable[[dict[str, Any]], None]] = []
# Sinks that take every event of one commit at once (one group message for a claim of 50).
_batch_sinks: list[Callable[[list[dict[str, Any]]], None]] = []
# The outbox writer: stores durable events in one INSERT inside the current transaction and sets
# each one's "id". The project registers it; without one, events are delivered without ids.
_store: list[Callable[..., Any]] = []
# How many `atomic()` blocks are open on this thread's connection (only the outermost stores).
_batch_depth = threading.local()


def store_register(store: Callable[..., Any]) -> None:
    """Register the outbox writer: called as `store(batch=events)` inside the publishing transaction."""
    _store[:] = [store]


def sink_register(sink: Callable[[dict[str, Any]], None]) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def sink_unregister(sink: Callable[[dict[str, Any]], None]) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def batch_sink_register(sink: Callable[[list[dict[str, Any]]], None]) -> None:
    if sink not in _batch_sinks:
        _batch_sinks.append(sink)


def batch_sink_unregister(sink: Callable[[list[dict[str, Any]]], None]) -> None:
    if sink in _batch_sinks:
        _batch_sinks.remove(sink)


def event_build(event_type: str, **fields: Any) -> dict[str, Any]:
    """Check `fields` against the event's shape and return the event as a JSON-able dict."""
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        raise ValueError(f"unknown monitor event type {event_type!r}")
    missing = set(spec.fields) - set(fields)
    extra = set(fields) - set(spec.fields)
    if missing or extra:
        raise ValueError(f"{event_type}: missing {sorted(missing)}, unexpected {sorted(extra)}")
    return {"type": event_type, "at": timezone.now().isoformat(), "data": fields}


def publish(event_type: str, **fields: Any) -> None:
    """Publish a monitor event: stored in the current transaction, delivered once it commits."""
    _enqueue([event_build(event_type, **fields)])


def deliver_unstored(event_type: str, **fields: Any) -> None:
    """Send an event that is never stored (EPHEMERAL_TYPES) to the sinks now, outside any transaction:
    for a caller on the event loop, which has no database transaction to wait for (the heartbeat's
    async lane, workers_mgmt/heartbeat_lane.py)."""
    if event_type not in EPHEMERAL_TYPES:
        raise ValueError(f"{event_type} is stored for replay: publish it in its transaction")
    _deliver([event_build(event_type, **fields)], unstored=[])


def publish_many(event_type: str, rows: list[dict[str, Any]]) -> None:
    """Publish one event per row of fields: one INSERT, delivered together on commit."""
    if rows:
        _enqueue([event_build(event_type, **fields) for fields in rows])


@contextmanager
def atomic() -> Iterator[None]:
    """`transaction.atomic()` whose events are stored together, in one INSERT before it commits.

    A report publishes two events and an exchange two per item: stored at each `publish` they
    would cost an INSERT each. Inside this block they wait; the outermost block stores what is still
    pending as its last statement (events of a savepoint that rolled back are gone by then, with
    their on-commit callback). Nested blocks leave the storing to the outermost one.
    """
    with transaction.atomic():
        depth = getattr(_batch_depth, "value", 0)
        _batch_depth.value = depth + 1
        try:
            yield
        finally:
            _batch_depth.value = depth
        if depth == 0:
            _store_pending()


def _pending_callbacks() -> list[Any]:
    connection = transaction.get_connection()
    return [callback for _sids, callback, _robust in connection.run_on_commit
            if getattr(callback, "monitor_unstored", None)]


def _store_pending() -> None:
    callbacks = _pending_callbacks()
    if callbacks:
        _store_now([event for callback in callbacks for event in callback.monitor_unstored])
        for callback in callbacks:
            callback.monitor_unstored.clear()


def _store_now(batch: list[dict[str, Any]]) -> None:
    durable = [event for event in batch if event["type"] not in EPHEMERAL_TYPES]
    if durable and _store:
        _store[0](batch=durable)


def _enqueue(batch: list[dict[str, Any]]) -> None:
    """Store `batch` in the outbox now (or at the end of `atomic()`), deliver it on commit.

    A transaction gets one pending list and one on_commit callback: later events join the list when
    they were published at the same savepoint depth as the callback was registered. Django drops a
    callback when the savepoint it was registered in rolls back, which is exactly when the rows
    stored in that savepoint go too, so joining only at the same depth keeps the two in step (an
    event published inside a nested savepoint gets its own callback, dropped with that savepoint).
    """
    connection = transaction.get_connection()
    deferred = connection.in_atomic_block and getattr(_batch_depth, "value", 0) > 0
    if not deferred:
        _store_now(batch)
    if connection.in_atomic_block and connection.run_on_commit:
        savepoints, callback, _robust = connection.run_on_commit[-1]
        pending = getattr(callback, "monitor_events", None)
        if pending is not None and savepoints == set(connection.savepoint_ids):
            pending.extend(batch)
            if deferred:
                callback.monitor_unstored.extend(batch)
            return
    pending = list(batch)

    def deliver() -> None:
        _deliver(pending, unstored=deliver.monitor_unstored)  # type: ignore[attr-defined]

    deliver.monitor_events = pending  # type: ignore[attr-defined]
    deliver.monitor_unstored = list(batch) if deferred else []  # type: ignore[attr-defined]
    transaction.on_commit(deliver)


def _deliver(batch: list[dict[str, Any]], *, unstored: list[dict[str, Any]]) -> None:
    if unstored:
        # Published in `atomic()` after its last chance to store (an exception the block's caller
        # caught without rolling back): stored now, after the commit, rather than never.
        try:
            _store_now(unstored)
        except Exception:
            logger.exception("monitor events stored late failed for %d events", len(unstored))
    for batch_sink in list(_batch_sinks):
        try:
            batch_sink(batch)
        except Exception:
            # A broken viewer path must never fail the request that changed the state.
            logger.exception("monitor batch sink failed for %d events", len(batch))
    for event in batch:
        for sink in list(_sinks):
            try:
                sink(event)
            except Exception:
                logger.exception("monitor event sink failed for %s", event["type"])


def event_types_markdown() -> str:
    """The event table of docs/API.md, generated here so the docs cannot drift from the code."""
    lines = ["| type | fields of `data` | stored for replay | meaning |", "|---|---|---|---|"]
    for spec in EVENT_TYPES.values():
        fields = ", ".join(f"`{name}`" for name in spec.fields)
        stored = "no (coalesced)" if spec.name in EPHEMERAL_TYPES else "yes"
        lines.append(f"| `{spec.name}` | {fields} | {stored} | {spec.description} |")
    return "\n".join(lines)
