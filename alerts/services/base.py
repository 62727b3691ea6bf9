"""What every alerts service shares: delivery timings, the error type, the clock and row locks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection
from django.utils import timezone

from alerts.models import DeliveryAttempt, Notification, Receiver
from alerts.notifiers import Outcome

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
    """A bad argument to an alerting service (a command prints it as a one-line error).

    `field` names the argument at fault, so an admin form can show the message beside its field.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def current_time(now: dt.datetime | None) -> dt.datetime:
    return now or timezone.now()


def attempt_record(*, notification: Notification, receiver: Receiver, number: int, started_at: dt.datetime,
                    outcome: Outcome) -> DeliveryAttempt:
    """The DeliveryAttempt row of one send: what the receiver answered and how fast."""
    return DeliveryAttempt.objects.create(
        notification=notification,
        receiver=receiver,
        number=number,
        started_at=started_at,
        ok=outcome.ok,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        retry_after_s=outcome.retry_after_s,
        error=outcome.error[:500],
    )


def skip_locked(queryset: Any) -> Any:
    """Row-lock the rows, skipping those another evaluator holds (PostgreSQL; SQLite serializes)."""
    if connection.vendor == "postgresql":
        return queryset.select_for_update(skip_locked=True)
    return queryset
