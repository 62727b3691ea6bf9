"""The staff-action audit: who changed what, which objects, each field before and after, when.

Every staff write is a service (Zulip's `do_*` actions are the model): it makes the change, writes
one `StaffAction` row in the same transaction, and publishes a `staff.action` monitor event on
commit. Admin, management commands and the staff API only call those services, handing them an
`Actor` (docs/SYSTEM_OVERVIEW.md, "Staff actions").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from core import events
from core.models import StaffAction, StaffSource
from core.purge import batched_delete

# The actor name of everything `make run`'s demo does by itself (leadops/demo.py).
DEMO_ACTOR_NAME = "demo"


@dataclass(frozen=True)
class Actor:
    """Who asked for a staff change, and through which door."""

    name: str
    source: str
    user_id: int | None = None

    @classmethod
    def from_user(cls, user: Any, *, source: str = StaffSource.ADMIN) -> Actor:
        """A signed-in staff user (an admin page or the staff API)."""
        return cls(name=user.get_username(), source=source, user_id=user.pk)

    @classmethod
    def command(cls, name: str) -> Actor:
        """A management command: the operator's shell has no user row."""
        return cls(name=f"command:{name}", source=StaffSource.COMMAND)

    @classmethod
    def demo(cls) -> Actor:
        """`make run`'s demo: its automatic work is logged as the demo, never as the signed-in admin."""
        return cls(name=DEMO_ACTOR_NAME, source=StaffSource.COMMAND)


# The staff change being made on this thread (`staff_change`): the domain trails written inside it
# (credential events, release audit events) point to its row.
_current: ContextVar[StaffAction | None] = ContextVar("staff_action_current", default=None)
# The rows written since an admin page began (`staff_actions_collect`): Django admin's own logging
# writes no second row for a save a service already audited.
_collected: ContextVar[list[int] | None] = ContextVar("staff_actions_collected", default=None)


def staff_action_record(
    *, actor: Actor, action: str, object_type: str, object_ids: Sequence[Any] = (),
    object_count: int | None = None, changes: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> StaffAction:
    """Write the audit row of one staff change and publish its event on commit (call inside it)."""
    ids = [str(object_id) for object_id in object_ids]
    count = len(ids) if object_count is None else object_count
    row = StaffAction.objects.create(
        created_at=timezone.now(), actor_id=actor.user_id, actor_name=actor.name[:150], source=actor.source,
        action=action, object_type=object_type, object_ids=" ".join(ids[:StaffAction.OBJECT_IDS_KEPT]),
        object_count=count, changes=changes or {}, detail=detail or {},
    )
    events.publish("staff.action", action=action, actor=row.actor_name, object_type=object_type,
                   object_count=count, staff_action_id=row.pk)
    collected = _collected.get()
    if collected is not None:
        collected.append(row.pk)
    return row


def actor_label(actor: Actor | str) -> str:
    """The label a domain trail keeps for `actor`: a username, `command:<name>`, or a worker's word."""
    return actor.name if isinstance(actor, Actor) else actor


@contextmanager
def staff_change(
    *, actor: Actor | str, action: str, object_type: str, object_ids: Sequence[Any] = (),
    detail: dict[str, Any] | None = None,
) -> Iterator[StaffAction | None]:
    """One transaction for one staff change: its `StaffAction` row first, then the change inside.

    The domain rows the block writes point to that row (`staff_action_current`). An actor given as
    a plain label (a worker, the system, a test factory) writes no row; a block inside another
    staff change joins it, so one change never writes two rows. Yields the row, or None.
    """
    with transaction.atomic():
        if not isinstance(actor, Actor) or _current.get() is not None:
            yield _current.get()
            return
        row = staff_action_record(actor=actor, action=action, object_type=object_type,
                                  object_ids=object_ids, detail=detail)
        token = _current.set(row)
        try:
            yield row
        finally:
            _current.reset(token)


def staff_action_current() -> StaffAction | None:
    """The `StaffAction` of the staff change this code runs inside, or None (a worker's own change)."""
    return _current.get()


@contextmanager
def staff_actions_collect() -> Iterator[list[int]]:
    """Collect the ids of the `StaffAction` rows written inside the block (one admin page)."""
    collected: list[int] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)


def staff_actions_collected() -> list[int] | None:
    """The ids collected by the enclosing `staff_actions_collect` block, or None outside one."""
    return _collected.get()


def audited_update(
    *, instance: models.Model, values: dict[str, Any], actor: Actor, action: str, object_type: str,
    clean: bool = False,
) -> dict[str, list[Any]]:
    """Change `values` of a row under its lock, save only what changed, audit it; return the changes.

    A foreign key's value is recorded by its primary key. Call inside the caller's transaction or on
    its own (it opens one).
    """
    with transaction.atomic():
        locked = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
        before = field_values(locked, values)
        for field, value in values.items():
            setattr(locked, field, value)
        if clean:
            locked.full_clean()
        changed = field_changes(before, locked)
        if changed:
            stamped = ["updated_at"] if hasattr(locked, "updated_at") else []
            if stamped:
                setattr(locked, "updated_at", timezone.now())  # noqa: B010 - not every model has it
            locked.save(update_fields=[*changed, *stamped])
            # A foreign key's value is a model instance: the audit keeps its primary key.
            audit = {name: [getattr(value, "pk", value) for value in pair] for name, pair in changed.items()}
            staff_action_record(actor=actor, action=action, object_type=object_type, object_ids=[locked.pk],
                                changes=audit)
    for field in values:
        setattr(instance, field, getattr(locked, field))
    return changed


def field_values(instance: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The current values of `fields` (the "before" of a change)."""
    return {name: getattr(instance, name) for name in fields}


def field_changes(before: dict[str, Any], instance: models.Model) -> dict[str, list[Any]]:
    """{field: [before, after]} for every field of `before` whose value differs on `instance` now."""
    return {name: [old, getattr(instance, name)] for name, old in before.items()
            if old != getattr(instance, name)}


def staff_actions_purge(*, older_than: Any, batch_size: int = 5000, dry_run: bool = False) -> int:
    """Delete staff-action audit rows written before `older_than` (the retention policy's cut)."""
    return batched_delete(queryset=StaffAction.objects.filter(created_at__lt=older_than),
                          batch_size=batch_size, raw=True, dry_run=dry_run)
