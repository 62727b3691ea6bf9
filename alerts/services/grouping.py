"""Grouping: alerts into notification groups, flushed by Alertmanager's rules (wait, interval, repeat)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from alerts import notifiers
from alerts.evidence import alert_links, evidence_lines
from alerts.models import (
    Alert,
    AlertGroup,
    AlertState,
    Notification,
    NotificationStatus,
    Receiver,
    ReceiverKind,
    Silence,
)
from alerts.selectors import (
    Destination,
    alert_destinations,
    default_timers,
    group_key_of,
    group_labels_of,
    labels_silenced,
    receivers_enabled_ids,
    route_tree,
    silences_active,
)
from alerts.services.base import MIN_RETRY_WINDOW_S, current_time, skip_locked


@dataclass
class GroupPlan:
    receiver_id: int
    route_id: int | None
    group_labels: dict[str, str]
    destination: Destination
    alerts: list[Alert] = field(default_factory=list)


def _plan(now: dt.datetime) -> dict[tuple[int, str], GroupPlan]:
    """Every firing alert routed and grouped: (receiver id, group key) -> the group's firing alerts."""
    firing = list(Alert.objects.filter(state=AlertState.FIRING).order_by("starts_at", "id"))
    plans: dict[tuple[int, str], GroupPlan] = {}
    if not firing:
        return plans
    tree, receiver_ids, timers = route_tree(), receivers_enabled_ids(), default_timers()
    for alert in firing:
        for dest in alert_destinations(alert.labels, tree=tree, receiver_ids=receiver_ids, timers=timers):
            group_labels = group_labels_of(alert.labels, dest.group_by)
            key = group_key_of(
                receiver_id=dest.receiver_id, route_id=dest.route_id, group_labels=group_labels
            )
            plan = plans.setdefault(
                (dest.receiver_id, key), GroupPlan(dest.receiver_id, dest.route_id, group_labels, dest)
            )
            plan.alerts.append(alert)
    return plans


def groups_sync(*, now: dt.datetime | None = None) -> dict[tuple[int, str], GroupPlan]:
    """Create or re-arm the group of every unsilenced firing alert; return the routing plan.

    A new group is flushed after its group wait; an idle group (it had nothing to send, e.g. all of
    it was resolved or silenced) is armed again the same way, but no sooner than a group interval
    after its last notification.
    """
    now = current_time(now)
    plans = _plan(now)
    silences = silences_active(now=now)
    live = {k: p for k, p in plans.items() if any(not labels_silenced(a.labels, silences) for a in p.alerts)}
    if not live:
        return plans
    groups = {
        (g.receiver_id, g.group_key): g
        for g in AlertGroup.objects.filter(group_key__in=[key for _, key in live])
    }
    missing = []
    for (receiver_id, key), plan in live.items():
        timers = plan.destination.timers
        group = groups.get((receiver_id, key))
        if group is None:
            missing.append(
                AlertGroup(
                    receiver_id=receiver_id,
                    route_id=plan.route_id,
                    group_key=key,
                    group_labels=plan.group_labels,
                    next_flush_at=now + dt.timedelta(seconds=timers.group_wait_s),
                )
            )
        elif group.next_flush_at is None:
            # A group that went quiet starts again like a new one (it waits its group wait), but never
            # sends sooner than a group interval after its last notification.
            at = now + dt.timedelta(seconds=timers.group_wait_s)
            if group.last_notified_at is not None:
                at = max(at, group.last_notified_at + dt.timedelta(seconds=timers.group_interval_s))
            # Compare-and-swap: a concurrent evaluator that armed it first wins.
            AlertGroup.objects.filter(pk=group.pk, next_flush_at__isnull=True).update(
                next_flush_at=at, updated_at=now
            )
    if missing:
        # Two evaluators may create the same group at once: the unique constraint keeps one.
        AlertGroup.objects.bulk_create(missing, ignore_conflicts=True)
    return plans


def _needs_update(
    *,
    group: AlertGroup,
    firing: set[str],
    unacknowledged: set[str],
    resolved: set[str],
    send_resolved: bool,
    repeat_s: float,
    now: dt.datetime,
) -> str:
    """Alertmanager's rule for whether a receiver must hear about a group now (docs/SYSTEM_OVERVIEW.md):
    why it must ("first", "new", "resolved", "repeat"), or "" when it need not.

    One addition: a group repeats only while one of its firing alerts is unacknowledged."""
    if group.last_notified_at is None:
        return "first" if firing else ""
    last_firing = set(group.last_firing)
    if not firing <= last_firing:
        return "new"  # something new is firing
    if not firing:
        # Everything resolved: tell the receiver so its firing set is cleared (sent only when it
        # asked for resolved notifications; the log is cleared either way).
        return "resolved" if last_firing else ""
    if send_resolved and not resolved <= set(group.last_resolved):
        return "resolved"
    if unacknowledged and group.last_notified_at <= now - dt.timedelta(seconds=repeat_s):
        return "repeat"
    return ""


def _alert_entry(alert: Alert, *, status: str, valid_until: dt.datetime) -> dict[str, Any]:
    evidence = alert.evidence or {}
    return {
        "status": status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": notifiers.iso(alert.starts_at or alert.active_since),
        "endsAt": notifiers.iso(alert.ends_at) if status == "resolved" else notifiers.ZERO_TIME,
        "validUntil": notifiers.iso(valid_until),
        "fingerprint": alert.fingerprint,
        "generatorURL": "",
        # What the failed attempts have in common and the staff-only pages to act on it (alerts/evidence.py).
        "evidence": evidence_lines(evidence) if status == "firing" else [],
        "links": alert_links(alert_id=alert.pk, evidence=evidence if status == "firing" else {}),
        "acknowledged_by": alert.acknowledged_by if alert.acknowledged_at else "",
    }


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    common = dict(dicts[0])
    for other in dicts[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common


def message_build(
    *,
    receiver: Receiver,
    group_key: str,
    group_labels: dict[str, str],
    firing: list[Alert],
    resolved: list[Alert],
    valid_until: dt.datetime,
) -> dict[str, Any]:
    """The frozen content of one notification (each notifier renders it in its own format)."""
    entries = [_alert_entry(a, status="firing", valid_until=valid_until) for a in firing]
    entries += [_alert_entry(a, status="resolved", valid_until=valid_until) for a in resolved]
    return {
        "status": "firing" if firing else "resolved",
        "receiver": receiver.name,
        "group_key": group_key,
        "group_labels": group_labels,
        "common_labels": _common([e["labels"] for e in entries]),
        "common_annotations": _common([e["annotations"] for e in entries]),
        "alerts": entries,
    }


def groups_flush(
    *, plans: dict[tuple[int, str], GroupPlan] | None = None, now: dt.datetime | None = None
) -> list[int]:
    """Flush every due group once (row-locked); return the ids of the notifications created."""
    now = current_time(now)
    if plans is None:
        plans = _plan(now)
    created: list[int] = []
    due = list(
        AlertGroup.objects.filter(next_flush_at__lte=now)
        .order_by("next_flush_at")
        .values_list("id", flat=True)[:500]
    )
    if not due:
        return created
    silences = silences_active(now=now)
    for group_id in due:
        with transaction.atomic():
            group = skip_locked(
                AlertGroup.objects.filter(pk=group_id, next_flush_at__lte=now).select_related("receiver")
            ).first()
            if group is None:
                continue  # another evaluator holds or already flushed it
            notification = _group_flush(group, plans.get((group.receiver_id, group.group_key)), silences, now)
            if notification is not None:
                created.append(notification.pk)
    return created


def _group_flush(
    group: AlertGroup, plan: GroupPlan | None, silences: list[Silence], now: dt.datetime
) -> Notification | None:
    receiver = group.receiver
    timers = plan.destination.timers if plan else default_timers()
    interval = dt.timedelta(seconds=timers.group_interval_s)
    in_flight = Notification.objects.filter(
        group=group, status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING]
    ).exists()
    firing_alerts = [a for a in (plan.alerts if plan else []) if not labels_silenced(a.labels, silences)]
    firing = {a.fingerprint for a in firing_alerts}
    resolved_alerts = list(
        Alert.objects.filter(
            fingerprint__in=group.last_firing, state=AlertState.RESOLVED, starts_at__isnull=False
        )
    )
    resolved = {a.fingerprint for a in resolved_alerts}
    keep_armed = bool(firing or group.last_firing or in_flight)
    group.next_flush_at = now + interval if keep_armed and receiver.enabled else None
    group.save(update_fields=["next_flush_at", "updated_at"])
    if in_flight or not receiver.enabled:
        return None  # the last message is still being delivered: its outcome decides the next one
    needs = _needs_update(
        group=group,
        firing=firing,
        unacknowledged={a.fingerprint for a in firing_alerts if a.acknowledged_at is None},
        resolved=resolved,
        send_resolved=receiver.send_resolved,
        repeat_s=timers.repeat_interval_s,
        now=now,
    )
    if receiver.kind == ReceiverKind.ALERTMANAGER and firing and group.last_notified_at is not None:
        # An Alertmanager resolves alerts nobody re-posts: re-post firing ones every group interval.
        needs = needs or ("repeat" if group.last_notified_at <= now - interval else "")
    if not needs:
        return None
    sent_resolved = resolved_alerts if receiver.send_resolved else []
    if not firing_alerts and not sent_resolved:
        # Nothing left to tell this receiver (everything resolved and it does not want resolved
        # notifications, or what still fires is silenced): clear the log, send nothing.
        AlertGroup.objects.filter(pk=group.pk).update(
            last_firing=[],
            last_resolved=sorted(resolved),
            last_notified_at=now,
            next_flush_at=None,
            updated_at=now,
        )
        return None
    message = message_build(
        receiver=receiver,
        group_key=group.group_key,
        group_labels=group.group_labels,
        firing=firing_alerts,
        resolved=sent_resolved,
        valid_until=now + 3 * interval,
    )
    condition_at = min((a.active_since for a in firing_alerts), default=None)
    notification = Notification.objects.create(
        group=group,
        receiver=receiver,
        summary=notifiers.summary_line(message)[:300],
        reason=needs,
        message=message,
        firing=sorted(firing),
        resolved=sorted(resolved),
        next_attempt_at=now,
        give_up_at=now + max(interval, dt.timedelta(seconds=MIN_RETRY_WINDOW_S)),
        condition_at=condition_at,
        created_at=now,
    )
    notification.alerts.set([*firing_alerts, *sent_resolved])
    return notification
