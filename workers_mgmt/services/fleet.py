"""Workers and their configuration: create, update, enable and disable, heartbeats.

Every staff change here writes its `StaffAction` row in its transaction (docs/SYSTEM_OVERVIEW.md,
"Staff actions"); a worker's heartbeat is its own and writes none.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Field
from django.utils.timezone import now as clock_now

from core import events
from core.audit import Actor, audited_update, staff_action_record, staff_change
from workers_mgmt.credential_cache import credential_cache_worker_seen, credentials_changed
from workers_mgmt.models import CredentialState, Worker, WorkerConfig
from workers_mgmt.services.credentials import (
    WORKER_TYPE,
    IssuedCredential,
    IssuedEnrollment,
    credential_add,
    enrollment_issue,
)


def worker_create(
    *, worker_id: str, name: str = "", channel: str = "stable", rate_limit_per_min: int | None = None,
    notes: str = "", actor: Actor | str = "system",
) -> tuple[Worker, IssuedCredential]:
    """Create a worker and its first (current) credential."""
    worker = _worker_new(worker_id=worker_id, name=name, channel=channel,
                         rate_limit_per_min=rate_limit_per_min, notes=notes)
    with staff_change(actor=actor, action="worker.create", object_type=WORKER_TYPE, object_ids=[worker_id]):
        worker.save(force_insert=True)
        issued = credential_add(worker=worker, state=CredentialState.CURRENT, actor=actor)
    return worker, issued


def _worker_new(*, worker_id: str, name: str, channel: str, rate_limit_per_min: int | None,
                notes: str) -> Worker:
    worker = Worker(
        id=worker_id, name=name or worker_id, channel=channel, notes=notes,
        rate_limit_per_min=rate_limit_per_min or settings.LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN,
    )
    worker.full_clean()
    return worker


def worker_heartbeat(
    *, worker: Worker, version: str, status: str, running_jobs: int, metrics: dict[str, Any] | None,
    ip: str | None, self_test: Any = None,
) -> Worker:
    """Store what a worker says about itself; one UPDATE (and live monitor events, no writes)."""
    worker_heartbeat_reading(worker=worker, version=version, status=status, running_jobs=running_jobs,
                             metrics=metrics, ip=ip, self_test=self_test)
    return worker


def worker_heartbeat_reading(
    *, worker: Worker, version: str, status: str, running_jobs: int, metrics: dict[str, Any] | None,
    ip: str | None, self_test: Any = None, read: tuple[str, list[Any]] | None = None,
) -> Any:
    """`worker_heartbeat`, whose UPDATE also returns `read` (an SQL expression and its parameters),
    so that the heartbeat's answer costs no statement of its own; returns that value (None without
    `read`, or when the worker is gone). Written once in SQL: the ORM's update compiled it anew on
    every heartbeat (docs/PERFORMANCE.md, "The heartbeat, round two")."""
    at = clock_now()
    previous = worker.last_seen_at
    sql, params = worker_heartbeat_statement(
        worker_id=worker.pk, at=at, version=version, status=status, running_jobs=running_jobs,
        metrics=metrics, ip=ip, self_test=self_test, read=read)
    if self_test is not None:
        worker.last_self_test = self_test
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() if read is not None else None
    worker.last_heartbeat_at = worker.last_seen_at = at
    worker.reported_version = version
    _online_announce(worker=worker, previous=previous, at=at)
    worker_heartbeat_stored(worker_id=worker.pk, at=at, version=version, status=status,
                            running_jobs=running_jobs)
    return row[0] if row else None


def worker_heartbeat_statement(
    *, worker_id: str, at: dt.datetime, version: str, status: str, running_jobs: int,
    metrics: dict[str, Any] | None, ip: str | None, self_test: Any = None,
    read: tuple[str, list[Any]] | None = None, db: Any = None,
) -> tuple[str, list[Any]]:
    """The heartbeat's one UPDATE of its worker (with `RETURNING read` when given) and its parameters,
    prepared by the model's fields as the ORM would for `db` (a database wrapper; the default
    connection when None). Also run by the heartbeat's async lane (workers_mgmt/heartbeat_lane.py),
    on its own connection."""
    db = connection if db is None else db
    changes: dict[str, Any] = {
        "last_heartbeat_at": at, "last_seen_at": at, "reported_version": version, "reported_status": status,
        "running_jobs": running_jobs, "last_metrics": metrics or {}, "last_ip": ip, "updated_at": at,
    }
    if self_test is not None:
        # Kept, not dropped: the release health gates read the latest self-test (docs/RELEASES.md).
        changes["last_self_test"] = self_test
    sql, fields = _heartbeat_update(db.vendor, tuple(changes), None if read is None else read[0])
    params = [field.get_db_prep_save(changes[field.name], db) for field in fields]
    params.append(worker_id)
    if read is not None:
        params.extend(read[1])
    return sql, params


@lru_cache(maxsize=8)
def _heartbeat_update(vendor: str, names: tuple[str, ...], returning: str | None,
                      unflushed: bool = False) -> tuple[str, list[Field]]:
    """The UPDATE of these worker fields and the fields, built once per shape (not per heartbeat).

    `unflushed` (PostgreSQL, a statement that is its own transaction): its commit does not wait for
    the WAL to reach the disk (`synchronous_commit` off for that transaction alone). A liveness stamp
    lost to a database crash is rewritten by the worker's next request. On the 1,000-worker step, waits
    for the WAL were half of PostgreSQL's active time, and these UPDATEs about a quarter of the fleet's
    commits (docs/PERFORMANCE.md, "Commits nobody needs flushed"). Never for a statement inside a
    transaction: that would relax the whole of it."""
    fields: list[Field] = [Worker._meta.get_field(name) for name in names]  # type: ignore[misc]
    assignments = ", ".join(f"{connection.ops.quote_name(str(field.column))} = %s" for field in fields)
    relax = ""
    if unflushed and vendor == "postgresql":
        relax = " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed"
    sql = f"UPDATE {Worker._meta.db_table} SET {assignments}{relax} WHERE id = %s"
    if returning is not None:
        sql += f" RETURNING {returning}"
    return sql, fields


def worker_heartbeat_stored(*, worker_id: str, at: dt.datetime, version: str, status: str,
                            running_jobs: int, deliver: bool = False) -> None:
    """After a heartbeat's UPDATE: this process's copies of the worker follow, and viewers are told.

    The heartbeat event is never stored (events.EPHEMERAL_TYPES); `deliver` sends it to the sinks at
    once, for a caller outside any database transaction and request thread (the async lane).
    """
    credential_cache_worker_seen(worker_id=worker_id, last_heartbeat_at=at, last_seen_at=at,
                                 reported_version=version)
    fields = {"worker_id": worker_id, "version": version, "status": status, "running_jobs": running_jobs}
    if deliver:
        events.deliver_unstored("worker.heartbeat", **fields)
    else:
        events.publish("worker.heartbeat", **fields)


def worker_online_due(*, previous: dt.datetime | None, at: dt.datetime) -> bool:
    """Whether a sign of life at `at` brings the worker back online (its previous was overdue)."""
    overdue = dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    return previous is None or at - previous > overdue


def worker_seen(*, worker: Worker, at: dt.datetime | None = None) -> bool:
    """Any signed request is a sign of life: refresh the worker's liveness (`last_seen_at`).

    At most one UPDATE per LEADOPS_LIVENESS_REFRESH_S per worker (per server process: each keeps
    its own copy of the worker), so a worker that pulls or exchanges within its heartbeat interval
    needs no separate heartbeat (docs/API.md, "Liveness"). True when this request refreshed it:
    its answer then stands in for a heartbeat's.
    """
    return worker_seen_reading(worker=worker, at=at)[0]


def worker_seen_reading(*, worker: Worker, at: dt.datetime | None = None,
                        read: tuple[str, list[Any]] | None = None) -> tuple[bool, tuple[Any, ...] | None]:
    """`worker_seen`, whose UPDATE also returns `read` (SQL expressions, comma-separated, and their
    parameters), as the heartbeat's does: (whether liveness was refreshed, the values read; None
    when it was not, or without `read`). A pull or an exchange that stands in for a heartbeat reads
    its update target and whether a push key waits this way, in the statement it makes anyway
    (docs/PERFORMANCE.md, "The fleet's exchange, stage by stage")."""
    at = at or clock_now()
    previous = worker.last_seen_at
    refresh = dt.timedelta(seconds=settings.LEADOPS_LIVENESS_REFRESH_S)
    if previous is not None and dt.timedelta(0) <= at - previous < refresh:
        return False, None
    sql, fields = _heartbeat_update(connection.vendor, ("last_seen_at",), None if read is None else read[0],
                                    unflushed=not connection.in_atomic_block)
    params = [fields[0].get_db_prep_save(at, connection), worker.pk, *(() if read is None else read[1])]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() if read is not None else None
    worker.last_seen_at = at
    credential_cache_worker_seen(worker_id=worker.pk, last_seen_at=at)
    _online_announce(worker=worker, previous=previous, at=at)
    return True, None if row is None else tuple(row)


def _online_announce(*, worker: Worker, previous: dt.datetime | None, at: dt.datetime) -> None:
    if worker_online_due(previous=previous, at=at):
        events.publish("worker.online", worker_id=worker.pk)


def worker_config_get() -> WorkerConfig:
    config, _ = WorkerConfig.objects.get_or_create(pk=1)
    return config


# The hot paths (reports, empty pulls, heartbeats) read the configuration through a copy at most this
# old, instead of one query per request. A change made in this process clears it at once; other
# server processes see it within these seconds, still "without a restart".
WORKER_CONFIG_MAX_AGE_S = 2.0
_config_cache: tuple[float, WorkerConfig] | None = None


def worker_config_recent() -> WorkerConfig:
    """The worker configuration as of at most WORKER_CONFIG_MAX_AGE_S ago (read-only: do not save)."""
    global _config_cache
    cached = _config_cache
    now = time.monotonic()
    if cached is not None and now - cached[0] < WORKER_CONFIG_MAX_AGE_S:
        return cached[1]
    config = worker_config_get()
    _config_cache = (now, config)
    return config


def worker_config_peek() -> WorkerConfig | None:
    """This process's copy of the configuration while `worker_config_recent` would answer it, else
    None (never reads the database: the heartbeat's async lane cannot)."""
    cached = _config_cache
    if cached is not None and time.monotonic() - cached[0] < WORKER_CONFIG_MAX_AGE_S:
        return cached[1]
    return None


def worker_config_cache_clear() -> None:
    """Forget this process's copy of the worker configuration (a change, or a test that counts reads)."""
    global _config_cache
    _config_cache = None


def worker_config_save(*, config: WorkerConfig, actor: Actor | None = None,
                       changed: dict[str, list[Any]] | None = None) -> WorkerConfig:
    """Save a config change and bump its version so workers know to reload."""
    with transaction.atomic():
        config.save()
        WorkerConfig.objects.filter(pk=config.pk).update(version=F("version") + 1)
        if actor is not None:
            staff_action_record(actor=actor, action="worker_config.save",
                                object_type="workers_mgmt.workerconfig", object_ids=[config.pk],
                                changes=changed or {})
    worker_config_cache_clear()
    config.refresh_from_db()
    return config


def workers_set_enabled(*, worker_ids: Iterable[str], enabled: bool, actor: Actor) -> int:
    """Staff: enable or disable workers (compare-and-swap: only rows in the other state change)."""
    with transaction.atomic():
        ids = list(Worker.objects.select_for_update().filter(pk__in=list(worker_ids), enabled=not enabled)
                   .values_list("pk", flat=True))
        if not ids:
            return 0
        credentials_changed(worker_ids=ids)
        changed = Worker.objects.filter(pk__in=ids, enabled=not enabled).update(
            enabled=enabled, updated_at=clock_now()
        )
        staff_action_record(actor=actor, action="worker.enable" if enabled else "worker.disable",
                            object_type=WORKER_TYPE, object_ids=ids,
                            changes={"enabled": [not enabled, enabled]})
    return changed


def worker_update(*, worker: Worker, values: dict[str, Any], actor: Actor) -> dict[str, list[Any]]:
    """Staff: change a worker's operator settings (name, channel, rate limit, notes, enabled).

    Only those columns are written: the heartbeat columns belong to the worker, which may have
    reported since the form was loaded. Every process judges the worker's next request by the new
    values (its rate limit, enabled).
    """
    with transaction.atomic():
        credentials_changed(worker_ids=[worker.pk])
        return audited_update(instance=worker, values=values, actor=actor, action="worker.update",
                              object_type=WORKER_TYPE)

def worker_create_for_enrollment(
    *, worker_id: str, actor: Actor | str, name: str = "", channel: str = "stable",
    rate_limit_per_min: int | None = None, notes: str = "", hours: float | None = None,
) -> tuple[Worker, IssuedEnrollment]:
    """Create a worker with no key yet and a one-time enrollment token for it."""
    worker = _worker_new(worker_id=worker_id, name=name, channel=channel,
                         rate_limit_per_min=rate_limit_per_min, notes=notes)
    with staff_change(actor=actor, action="worker.create", object_type=WORKER_TYPE, object_ids=[worker_id],
                      detail={"enrollment": True}):
        worker.save(force_insert=True)
        issued = enrollment_issue(worker=worker, actor=actor, hours=hours)
    return worker, issued

