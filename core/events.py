"""Monitor events: one place that names them and defines their fields, published on commit.

Services call `publish("job.succeeded", job_id=..., ...)` inside their transaction; the event leaves
only when that transaction commits (`transaction.on_commit`), so a dashboard never shows a change
that was rolled back. Delivery to live viewers (Channels group, SSE replay) is the job of the
live-monitoring code; this module fixes the names and shapes every app publishes against.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
                  "A staff change was made and audited (the row is in admin: Kernel > Staff actions)."),
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
# group and the replay log); tests can register their own to observe what was published.
_sinks: list[Callable[[dict[str, Any]], None]] = []
# Sinks that take every event of one commit at once (one INSERT, one group message for a claim of 50).
_batch_sinks: list[Callable[[list[dict[str, Any]]], None]] = []


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
    """Publish a monitor event when the current transaction commits (at once outside one)."""
    _enqueue([event_build(event_type, **fields)])


def publish_many(event_type: str, rows: list[dict[str, Any]]) -> None:
    """Publish one event per row of fields, delivered together on commit (one store, one push)."""
    if rows:
        _enqueue([event_build(event_type, **fields) for fields in rows])


def _enqueue(batch: list[dict[str, Any]]) -> None:
    """Deliver `batch` on commit, together with what this transaction has already published.

    A report publishes two or three events; delivered one callback each, every one of them cost the
    replay log its own INSERT and commit. So a transaction gets one pending list and one on_commit
    callback: later events join the list when they were published at the same savepoint depth as the
    callback was registered. Django drops a callback when the savepoint it was registered in rolls
    back, so joining only at the same depth keeps that rule exactly (an event published inside a
    nested savepoint gets its own callback, dropped with that savepoint).
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block and connection.run_on_commit:
        savepoints, callback, _robust = connection.run_on_commit[-1]
        pending = getattr(callback, "monitor_events", None)
        if pending is not None and savepoints == set(connection.savepoint_ids):
            pending.extend(batch)
            return
    pending = list(batch)

    def deliver() -> None:
        _deliver(pending)

    deliver.monitor_events = pending  # type: ignore[attr-defined]
    transaction.on_commit(deliver)


def _deliver(batch: list[dict[str, Any]]) -> None:
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
