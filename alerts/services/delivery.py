"""Delivery: claim a notification, send it with retries and backoff, log every attempt."""

from __future__ import annotations

import datetime as dt
import logging
import random

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alerts import notifiers
from alerts.models import (
    Alert,
    AlertEvent,
    AlertGroup,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    Receiver,
    ReceiverKind,
)
from alerts.services.base import (
    RETRY_BASE_S,
    RETRY_CAP_S,
    SEND_LEASE_S,
    SLACK_MIN_GAP_S,
    attempt_record,
    current_time,
)
from alerts.services.grouping import groups_flush, groups_sync
from alerts.services.rules import alerts_evaluate

logger = logging.getLogger(__name__)


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
    now = current_time(now)
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
        attempt = attempt_record(notification=notification, receiver=receiver, number=number, started_at=now,
                                  outcome=outcome)
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
    now = current_time(now)
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
    now = current_time(now)
    counts = alerts_evaluate(now=now) if evaluate else {}
    plans = groups_sync(now=now)
    created = groups_flush(plans=plans, now=now)
    delivered = notifications_deliver()
    return {**counts, "notifications": len(created), "delivered": delivered}
