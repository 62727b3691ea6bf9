"""Every write of alerting: rules, receivers, silences, the evaluator's three steps, delivery.

One evaluator round (`evaluator_tick`) is:
1. `alerts_evaluate`: each enabled rule's condition -> Alert rows (pending -> firing -> resolved),
   each rule under a row lock so concurrent evaluators never both move the same alert;
2. `groups_sync` + `groups_flush`: firing alerts are routed to receivers and grouped; a due group is
   flushed under its row lock (SKIP LOCKED on PostgreSQL, the IMMEDIATE write lock on SQLite), and a
   Notification is created only when Alertmanager's rules say the receiver must hear about a change;
3. `notifications_deliver`: due notifications are claimed by compare-and-swap, sent, and every
   attempt is logged; failures are retried with backoff honouring Retry-After.
So however many evaluators run, each notification is created once and sent by one of them.
docs/SYSTEM_OVERVIEW.md ("Alerts") tells the whole story.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from alerts import notifiers
from alerts.crypto import encrypt_text
from alerts.matchers import MatcherError, matcher_check, matchers_text
from alerts.models import (
    Alert,
    AlertEvent,
    AlertGroup,
    AlertRule,
    AlertState,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    Receiver,
    ReceiverKind,
    RuleKind,
    Severity,
    Silence,
)
from alerts.rules import CONDITIONS, DEFAULTS, Condition
from alerts.selectors import (
    Destination,
    alert_destinations,
    default_timers,
    fingerprint_of,
    group_key_of,
    group_labels_of,
    labels_silenced,
    receivers_enabled_ids,
    route_tree,
    silences_active,
)
from core import events

logger = logging.getLogger(__name__)

# Delivery retries: d = min(cap, base * 2**(n-1)), waited as d/2 + random(0, d/2), at least the
# receiver's Retry-After; a notification is retried until its group interval has passed (at least
# MIN_RETRY_WINDOW_S), as Alertmanager retries until the next flush.
RETRY_BASE_S = 1.0
RETRY_CAP_S = 60.0
MIN_RETRY_WINDOW_S = 60.0
# A claimed notification whose sender died is taken again after this long.
SEND_LEASE_S = 60.0
# Slack: at most one message a second per webhook.
SLACK_MIN_GAP_S = 1.0


class AlertsError(ValueError):
    """A bad argument to an alerting service (a command prints it as a one-line error)."""


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


def _locked(queryset: Any) -> Any:
    """Row-lock the rows, skipping those another evaluator holds (PostgreSQL; SQLite serializes)."""
    if connection.vendor == "postgresql":
        return queryset.select_for_update(skip_locked=True)
    return queryset


# ----- rules ------------------------------------------------------------------------------------


def rules_ensure() -> list[AlertRule]:
    """Create the built-in rules that are missing, with their defaults; return all of them."""
    existing = set(AlertRule.objects.values_list("kind", flat=True))
    AlertRule.objects.bulk_create(
        [
            AlertRule(kind=kind, threshold=d.threshold, for_seconds=d.for_seconds, severity=d.severity)
            for kind, d in DEFAULTS.items()
            if kind not in existing
        ],
        ignore_conflicts=True,
    )
    return list(AlertRule.objects.order_by("kind"))


def rule_set(
    *,
    kind: str,
    threshold: float | None = None,
    for_seconds: int | None = None,
    enabled: bool | None = None,
    severity: str | None = None,
    labels: dict[str, str] | None = None,
) -> AlertRule:
    """Change a built-in rule (created with its defaults first when missing)."""
    if kind not in RuleKind.values:
        raise AlertsError(f"unknown rule {kind!r} (one of {', '.join(RuleKind.values)})")
    if threshold is not None and threshold < 0:
        raise AlertsError("--threshold must be zero or more")
    if for_seconds is not None and for_seconds < 0:
        raise AlertsError("--for-seconds must be zero or more")
    if severity is not None and severity not in Severity.values:
        raise AlertsError(f"unknown severity {severity!r}")
    if labels is not None and (
        not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        or {"alertname", "severity"} & set(labels)
    ):
        raise AlertsError("labels are text to text, and may not set alertname or severity")
    rules_ensure()
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().get(kind=kind)
        changed = []
        for name, value in (
            ("threshold", threshold),
            ("for_seconds", for_seconds),
            ("enabled", enabled),
            ("severity", severity),
            ("labels", labels),
        ):
            if value is not None:
                setattr(rule, name, value)
                changed.append(name)
        if changed:
            rule.save(update_fields=[*changed, "updated_at"])
    return rule


def _labels_for(rule: AlertRule, condition: Condition) -> dict[str, str]:
    return {
        **{str(k): str(v) for k, v in (rule.labels or {}).items()},
        **condition.labels,
        "alertname": rule.kind,
        "severity": rule.severity,
    }


def alerts_evaluate(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule once; return how many alerts each state change touched."""
    now = _now(now)
    counts: dict[str, int] = defaultdict(int)
    rules_ensure()
    for rule_id in AlertRule.objects.order_by("kind").values_list("id", flat=True):
        with transaction.atomic():
            rule = _locked(AlertRule.objects.filter(pk=rule_id)).first()
            if rule is None:
                continue  # another evaluator is evaluating this rule right now
            conditions = CONDITIONS[rule.kind](rule.threshold, now) if rule.enabled else []
            for name, value in _rule_apply(rule, conditions, now).items():
                counts[name] += value
    return dict(counts)


def _rule_apply(rule: AlertRule, conditions: list[Condition], now: dt.datetime) -> dict[str, int]:
    """Move this rule's alerts to what its conditions say now (the rule row is locked by the caller)."""
    wanted: dict[str, tuple[dict[str, str], Condition]] = {}
    for condition in conditions:
        labels = _labels_for(rule, condition)
        wanted[fingerprint_of(labels)] = (labels, condition)
    existing = {
        alert.fingerprint: alert
        for alert in Alert.objects.filter(
            Q(rule=rule, state__in=[AlertState.PENDING, AlertState.FIRING]) | Q(fingerprint__in=list(wanted))
        )
    }
    hold = dt.timedelta(seconds=rule.for_seconds)
    counts = {"pending": 0, "firing": 0, "resolved": 0}
    created: list[Alert] = []
    became_pending: list[Alert] = []
    fired: list[Alert] = []
    resolved: list[Alert] = []
    steady: list[Alert] = []
    timeline: list[AlertEvent] = []
    for fp, (labels, condition) in wanted.items():
        annotations = {"summary": condition.summary, **condition.annotations}
        alert = existing.get(fp)
        if alert is None or alert.state == AlertState.RESOLVED:
            # A new streak: pending from when the condition began, firing at once when `for` has passed.
            since = min(condition.since or now, now)
            firing_now = now - since >= hold
            fields = {
                "rule": rule,
                "labels": labels,
                "annotations": annotations,
                "value": condition.value,
                "state": AlertState.FIRING if firing_now else AlertState.PENDING,
                "active_since": since,
                "starts_at": now if firing_now else None,
                "ends_at": None,
                "last_evaluated_at": now,
            }
            if alert is None:
                alert = Alert(fingerprint=fp, **fields)
                created.append(alert)
            else:
                for name, value in fields.items():
                    setattr(alert, name, value)
                alert.save()
            counts[alert.state] += 1
            (fired if firing_now else became_pending).append(alert)
            continue
        alert.value, alert.annotations, alert.last_evaluated_at = condition.value, annotations, now
        if alert.state == AlertState.PENDING and now - alert.active_since >= hold:
            # Compare-and-swap on the state we read: a concurrent change is never overwritten.
            if Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).update(
                state=AlertState.FIRING,
                starts_at=now,
                value=alert.value,
                annotations=annotations,
                last_evaluated_at=now,
                updated_at=now,
            ):
                alert.state, alert.starts_at = AlertState.FIRING, now
                counts["firing"] += 1
                fired.append(alert)
            continue
        steady.append(alert)
    # Alerts that stay as they were: one UPDATE for all of them, however many workers are silent.
    Alert.objects.bulk_update(steady, ["value", "annotations", "last_evaluated_at"], batch_size=500)
    if created:
        Alert.objects.bulk_create(created)
        if any(alert.pk is None for alert in created):
            ids = dict(
                Alert.objects.filter(fingerprint__in=[a.fingerprint for a in created]).values_list(
                    "fingerprint", "id"
                )
            )
            for alert in created:
                alert.pk = alert.id = ids[alert.fingerprint]
    for fp, alert in existing.items():
        if fp in wanted or alert.state == AlertState.RESOLVED:
            continue
        if Alert.objects.filter(pk=alert.pk, state=alert.state).update(
            state=AlertState.RESOLVED, ends_at=now, last_evaluated_at=now, updated_at=now
        ):
            counts["resolved"] += 1
            if alert.state == AlertState.FIRING:
                alert.state, alert.ends_at = AlertState.RESOLVED, now
                resolved.append(alert)
            else:
                timeline.append(
                    AlertEvent(
                        alert=alert,
                        at=now,
                        kind="inactive",
                        detail="the condition cleared before the alert fired",
                    )
                )
    timeline += [
        AlertEvent(alert=a, at=now, kind="pending", detail=a.annotations.get("summary", "")[:300])
        for a in became_pending
    ]
    timeline += [
        AlertEvent(alert=a, at=now, kind="firing", detail=a.annotations.get("summary", "")[:300])
        for a in fired
    ]
    timeline += [AlertEvent(alert=a, at=now, kind="resolved") for a in resolved]
    AlertEvent.objects.bulk_create(timeline)
    if fired:
        events.publish_many(
            "alert.firing",
            [
                {
                    "rule": rule.kind,
                    "fingerprint": a.fingerprint,
                    "labels": a.labels,
                    "summary": a.annotations.get("summary", ""),
                }
                for a in fired
            ],
        )
    if resolved:
        events.publish_many(
            "alert.resolved",
            [{"rule": rule.kind, "fingerprint": a.fingerprint, "labels": a.labels} for a in resolved],
        )
    return counts


# ----- grouping ---------------------------------------------------------------------------------


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
    now = _now(now)
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
    resolved: set[str],
    send_resolved: bool,
    repeat_s: float,
    now: dt.datetime,
) -> bool:
    """Alertmanager's rule for whether a receiver must hear about a group now (docs/SYSTEM_OVERVIEW.md)."""
    if group.last_notified_at is None:
        return bool(firing)
    last_firing = set(group.last_firing)
    if not firing <= last_firing:
        return True  # something new is firing
    if not firing:
        # Everything resolved: tell the receiver so its firing set is cleared (sent only when it
        # asked for resolved notifications; the log is cleared either way).
        return bool(last_firing)
    if send_resolved and not resolved <= set(group.last_resolved):
        return True
    return group.last_notified_at <= now - dt.timedelta(seconds=repeat_s)


def _alert_entry(alert: Alert, *, status: str, valid_until: dt.datetime) -> dict[str, Any]:
    return {
        "status": status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": notifiers.iso(alert.starts_at or alert.active_since),
        "endsAt": notifiers.iso(alert.ends_at) if status == "resolved" else notifiers.ZERO_TIME,
        "validUntil": notifiers.iso(valid_until),
        "fingerprint": alert.fingerprint,
        "generatorURL": "",
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
    now = _now(now)
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
            group = _locked(
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
        resolved=resolved,
        send_resolved=receiver.send_resolved,
        repeat_s=timers.repeat_interval_s,
        now=now,
    )
    if receiver.kind == ReceiverKind.ALERTMANAGER and firing and group.last_notified_at is not None:
        # An Alertmanager resolves alerts nobody re-posts: re-post firing ones every group interval.
        needs = needs or group.last_notified_at <= now - interval
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
        message=message,
        firing=sorted(firing),
        resolved=sorted(resolved),
        next_attempt_at=now,
        give_up_at=now + max(interval, dt.timedelta(seconds=MIN_RETRY_WINDOW_S)),
        condition_at=condition_at,
        created_at=now,
    )
    return notification


# ----- delivery ---------------------------------------------------------------------------------


def _backoff_s(attempt: int) -> float:
    delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def _slack_slot(receiver_id: int, now: dt.datetime) -> dt.datetime | None:
    """Take the receiver's next send slot, or return when the next one is free (1 message a second)."""
    with transaction.atomic():
        receiver = Receiver.objects.select_for_update().get(pk=receiver_id)
        if receiver.next_send_at and receiver.next_send_at > now:
            return receiver.next_send_at
        Receiver.objects.filter(pk=receiver_id).update(
            next_send_at=now + dt.timedelta(seconds=SLACK_MIN_GAP_S)
        )
    return None


def notification_claim(*, notification_id: int, now: dt.datetime | None = None) -> Notification | None:
    """Take a due notification for sending (compare-and-swap: one sender wins), or None."""
    now = _now(now)
    taken = Notification.objects.filter(
        Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
        | Q(status=NotificationStatus.SENDING, lease_until__lt=now),
        pk=notification_id,
    ).update(status=NotificationStatus.SENDING, lease_until=now + dt.timedelta(seconds=SEND_LEASE_S))
    if not taken:
        return None
    return Notification.objects.select_related("receiver", "group").get(pk=notification_id)


def notification_send(*, notification: Notification) -> DeliveryAttempt | None:
    """Make one delivery attempt of a claimed notification and record it; None when rate-limited."""
    receiver = notification.receiver
    now = timezone.now()
    if receiver.kind == ReceiverKind.SLACK:
        wait_until = _slack_slot(receiver.pk, now)
        if wait_until is not None:
            Notification.objects.filter(pk=notification.pk, status=NotificationStatus.SENDING).update(
                status=NotificationStatus.PENDING, next_attempt_at=wait_until, lease_until=None
            )
            return None
    outcome = notifiers.send(receiver, notification.message)
    finished = timezone.now()
    number = notification.attempts + 1
    with transaction.atomic():
        attempt = DeliveryAttempt.objects.create(
            notification=notification,
            receiver=receiver,
            number=number,
            started_at=now,
            ok=outcome.ok,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            retry_after_s=outcome.retry_after_s,
            error=outcome.error[:500],
        )
        if outcome.ok:
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.DELIVERED, attempts=number, delivered_at=finished, lease_until=None
            )
            if notification.group_id is not None:
                _log_delivered(notification, finished)
        else:
            delay = max(_backoff_s(number), outcome.retry_after_s or 0.0)
            retry_at = finished + dt.timedelta(seconds=delay)
            gave_up = notification.is_test or retry_at > notification.give_up_at
            Notification.objects.filter(pk=notification.pk).update(
                status=NotificationStatus.FAILED if gave_up else NotificationStatus.PENDING,
                attempts=number,
                next_attempt_at=retry_at,
                lease_until=None,
            )
            if outcome.status_code == 429 and outcome.retry_after_s:
                # The receiver told us to slow down: no message to it before then.
                Receiver.objects.filter(pk=receiver.pk).update(next_send_at=retry_at)
            logger.warning(
                "alert notification %s to receiver %s failed (attempt %d): %s%s",
                notification.pk,
                receiver.name,
                number,
                outcome.error[:200],
                "; giving up" if gave_up else f"; retry in {delay:.1f} s",
            )
    return attempt


def _log_delivered(notification: Notification, at: dt.datetime) -> None:
    """Write the group's notification log (what the receiver now knows) and the alerts' timelines."""
    # A group deleted meanwhile (history purge) has no log left to write; the timelines still are.
    AlertGroup.objects.filter(pk__in=[notification.group_id] if notification.group_id else []).update(
        last_firing=notification.firing,
        last_resolved=notification.resolved,
        last_notified_at=at,
        updated_at=at,
    )
    fingerprints = [a["fingerprint"] for a in notification.message["alerts"]]
    alerts = Alert.objects.filter(fingerprint__in=fingerprints).values_list("id", flat=True)
    AlertEvent.objects.bulk_create(
        [
            AlertEvent(
                alert_id=alert_id,
                at=at,
                kind="notified",
                detail=f"{notification.summary} -> {notification.receiver.name}"[:300],
            )
            for alert_id in alerts
        ]
    )


def notifications_deliver(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Send every due notification once; return how many were delivered in this pass."""
    now = _now(now)
    due = list(
        Notification.objects.filter(
            Q(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
            | Q(status=NotificationStatus.SENDING, lease_until__lt=now)
        )
        .order_by("next_attempt_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    delivered = 0
    for notification_id in due:
        notification = notification_claim(notification_id=notification_id, now=now)
        if notification is None:
            continue
        attempt = notification_send(notification=notification)
        delivered += bool(attempt and attempt.ok)
    return delivered


def evaluator_tick(*, now: dt.datetime | None = None, evaluate: bool = True) -> dict[str, int]:
    """One round of the evaluator: rules (when `evaluate`), groups, due flushes, due deliveries."""
    now = _now(now)
    counts = alerts_evaluate(now=now) if evaluate else {}
    plans = groups_sync(now=now)
    created = groups_flush(plans=plans, now=now)
    delivered = notifications_deliver()
    return {**counts, "notifications": len(created), "delivered": delivered}


# ----- receivers, silences, tests ---------------------------------------------------------------


def _url_hint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else ""


def receiver_set(
    *,
    name: str,
    kind: str,
    url: str | None = None,
    secret: str | None = None,
    addresses: str | None = None,
    send_resolved: bool | None = None,
    enabled: bool | None = None,
) -> Receiver:
    """Create or change a receiver; the URL and secret are stored encrypted (never shown again)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AlertsError("a receiver needs a name of 1-100 characters")
    if kind not in ReceiverKind.values:
        raise AlertsError(f"unknown receiver kind {kind!r}")
    if kind == ReceiverKind.EMAIL:
        recipients = [a.strip() for a in (addresses or "").split(",") if a.strip()]
        if not recipients or any("@" not in a or " " in a for a in recipients):
            raise AlertsError("--email needs one or more addresses, comma-separated")
        addresses = ",".join(recipients)
    elif url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AlertsError("the receiver URL must be an http(s) URL")
        host = (parts.hostname or "").lower()
        if kind == ReceiverKind.TEAMS and (
            host.endswith("webhook.office.com") or host == "outlook.office.com"
        ):
            # Microsoft retired Office 365 connectors (docs/RUNBOOK.md, Alerts): only Workflows URLs work.
            raise AlertsError(
                "that is a retired Office 365 connector URL; create a Teams Workflows webhook instead"
            )
    with transaction.atomic():
        receiver = Receiver.objects.select_for_update().filter(name=name).first()
        if receiver is None:
            if kind != ReceiverKind.EMAIL and not url:
                raise AlertsError("a new webhook receiver needs its URL")
            receiver = Receiver(name=name)
        receiver.kind = kind
        if kind == ReceiverKind.EMAIL:
            receiver.addresses, receiver.url_encrypted, receiver.url_hint = addresses or "", "", ""
        elif url:
            receiver.url_encrypted, receiver.url_hint = encrypt_text(url), _url_hint(url)
        if secret is not None:
            receiver.secret_encrypted = encrypt_text(secret)
        if send_resolved is not None:
            receiver.send_resolved = send_resolved
        if enabled is not None:
            receiver.enabled = enabled
        receiver.save()
    return receiver


def receiver_test(*, receiver: Receiver, now: dt.datetime | None = None) -> DeliveryAttempt:
    """Send a test notification to one receiver now (one attempt, logged like any other)."""
    now = _now(now)
    message = {
        "status": "firing",
        "receiver": receiver.name,
        "group_key": "test",
        "group_labels": {"alertname": "test"},
        "common_labels": {"alertname": "test", "severity": "info"},
        "common_annotations": {"summary": "A test notification from LeadOps: this receiver works."},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "test", "severity": "info"},
                "annotations": {"summary": "A test notification from LeadOps: this receiver works."},
                "startsAt": notifiers.iso(now),
                "endsAt": notifiers.ZERO_TIME,
                "validUntil": notifiers.iso(now + dt.timedelta(minutes=5)),
                "fingerprint": "test",
                "generatorURL": "",
            }
        ],
    }
    notification = Notification.objects.create(
        receiver=receiver,
        is_test=True,
        summary=notifiers.summary_line(message),
        message=message,
        status=NotificationStatus.SENDING,
        next_attempt_at=now,
        give_up_at=now,
        created_at=now,
        lease_until=now + dt.timedelta(seconds=SEND_LEASE_S),
    )
    if receiver.kind == ReceiverKind.SLACK:
        # A test is sent at once; it still takes the webhook's one-a-second slot.
        Receiver.objects.filter(pk=receiver.pk).update(
            next_send_at=now + dt.timedelta(seconds=SLACK_MIN_GAP_S)
        )
    return _send_now(notification)


def _send_now(notification: Notification) -> DeliveryAttempt:
    receiver = notification.receiver
    started = timezone.now()
    outcome = notifiers.send(receiver, notification.message)
    attempt = DeliveryAttempt.objects.create(
        notification=notification,
        receiver=receiver,
        number=1,
        started_at=started,
        ok=outcome.ok,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        retry_after_s=outcome.retry_after_s,
        error=outcome.error[:500],
    )
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.DELIVERED if outcome.ok else NotificationStatus.FAILED,
        attempts=1,
        delivered_at=timezone.now() if outcome.ok else None,
        lease_until=None,
    )
    return attempt


def _matchers_checked(matchers: list[dict[str, str]]) -> list[dict[str, str]]:
    if not matchers:
        raise AlertsError("a silence needs at least one matcher")
    try:
        return [matcher_check(m) for m in matchers]
    except MatcherError as exc:
        raise AlertsError(str(exc)) from exc


def silence_create(
    *,
    matchers: list[dict[str, str]],
    ends_at: dt.datetime,
    created_by: str,
    comment: str,
    starts_at: dt.datetime | None = None,
    weekdays: list[int] | None = None,
    hour_start: int | None = None,
    hour_end: int | None = None,
) -> Silence:
    """Mute matching alerts from `starts_at` (now) to `ends_at`; recurring when weekdays are given."""
    starts_at = starts_at or timezone.now()
    matchers = _matchers_checked(matchers)
    if ends_at <= starts_at:
        raise AlertsError("a silence must end after it starts")
    if not comment.strip():
        raise AlertsError("a silence needs a comment (why, and who to ask)")
    if not created_by.strip():
        raise AlertsError("a silence needs an author")
    weekdays = sorted(set(weekdays or []))
    if any(not isinstance(d, int) or not 0 <= d <= 6 for d in weekdays):
        raise AlertsError("weekdays are 0 (Monday) to 6 (Sunday)")
    for hour in (hour_start, hour_end):
        if hour is not None and not 0 <= hour <= 24:
            raise AlertsError("hours are 0 to 24")
    if hour_start is not None and hour_end is not None and hour_end <= hour_start:
        raise AlertsError("the window's end hour must be after its start hour")
    return Silence.objects.create(
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=created_by.strip()[:150],
        comment=comment.strip(),
        weekdays=weekdays,
        hour_start=hour_start,
        hour_end=hour_end,
    )


def silence_from_alert(*, alert: Alert, created_by: str, minutes: int = 120, comment: str = "") -> Silence:
    """Silence exactly this alert (every one of its labels) for `minutes` (the admin's one click)."""
    now = timezone.now()
    matchers = [{"name": k, "op": "=", "value": str(v)} for k, v in sorted(alert.labels.items())]
    return silence_create(
        matchers=matchers,
        starts_at=now,
        ends_at=now + dt.timedelta(minutes=minutes),
        created_by=created_by,
        comment=comment or f"Silenced from alert {alert.fingerprint} ({matchers_text(matchers)})",
    )


def silence_expire(*, silence: Silence, now: dt.datetime | None = None) -> bool:
    """End a silence now (Alertmanager's expire); False when it had ended already."""
    now = _now(now)
    if silence.starts_at > now:
        # A silence that never started is ended at its start, so it never mutes anything.
        return bool(
            Silence.objects.filter(pk=silence.pk, ends_at__gt=now).update(
                ends_at=silence.starts_at, expired_early_at=now, updated_at=now
            )
        )
    return bool(
        Silence.objects.filter(pk=silence.pk, ends_at__gt=now).update(
            ends_at=now, expired_early_at=now, updated_at=now
        )
    )


def alerts_history_purge(*, older_than: dt.datetime) -> dict[str, int]:
    """Forget resolved alerts, finished notifications (with their attempts) and expired silences
    that ended before `older_than`; firing and pending alerts and live silences are kept."""
    finished = [NotificationStatus.DELIVERED, NotificationStatus.FAILED]
    with transaction.atomic():
        # delete() counts the cascaded rows too; take each model's own count.
        _, gone_notifications = Notification.objects.filter(
            status__in=finished, created_at__lt=older_than
        ).delete()
        _, gone_alerts = Alert.objects.filter(state=AlertState.RESOLVED, ends_at__lt=older_than).delete()
        _, gone_silences = Silence.objects.filter(ends_at__lt=older_than).delete()
    notifications = gone_notifications.get(Notification._meta.label, 0)
    alerts = gone_alerts.get(Alert._meta.label, 0)
    silences = gone_silences.get(Silence._meta.label, 0)
    return {"notifications": notifications, "alerts": alerts, "silences": silences}
