"""Receivers, silences, test sends and the history purge: what staff set up and clean."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from alerts import notifiers
from alerts.crypto import encrypt_text
from alerts.matchers import MatcherError, matcher_check, matchers_text
from alerts.models import (
    Alert,
    AlertState,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    Receiver,
    ReceiverKind,
    Route,
    Silence,
)
from alerts.services.base import SEND_LEASE_S, SLACK_MIN_GAP_S, AlertsError, attempt_record, current_time
from core.audit import Actor, field_changes, field_values, staff_action_record
from core.purge import delete_or_count


def _url_hint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.netloc else ""


def _receiver_fields(receiver: Receiver) -> dict[str, object]:
    return {"kind": receiver.kind, "addresses": receiver.addresses, "send_resolved": receiver.send_resolved,
            "enabled": receiver.enabled}


def receiver_check(*, kind: str, url: str | None = None, addresses: str | None = None,
                   enabled: bool = True) -> str:
    """Check what a receiver would be made of; return its addresses normalized (email), or raise
    AlertsError naming the field at fault. The admin form and `receiver_set` both ask it."""
    if kind not in ReceiverKind.values:
        raise AlertsError(f"unknown receiver kind {kind!r}", field="kind")
    if kind == ReceiverKind.DEMO:
        refusal = notifiers.demo_refusal() if enabled else ""
        if refusal:
            raise AlertsError(refusal, field="kind")
        return ""
    if kind == ReceiverKind.EMAIL:
        recipients = [a.strip() for a in (addresses or "").split(",") if a.strip()]
        if not recipients or any("@" not in a or " " in a for a in recipients):
            raise AlertsError("--email needs one or more addresses, comma-separated", field="addresses")
        # In production an enabled email receiver must reach a mail server (docs/RUNBOOK.md, "Setting up").
        refusal = notifiers.email_refusal() if enabled else ""
        if refusal:
            raise AlertsError(refusal, field="kind")
        return ",".join(recipients)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AlertsError("the receiver URL must be an http(s) URL", field="url")
        host = (parts.hostname or "").lower()
        if kind == ReceiverKind.TEAMS and (
            host.endswith("webhook.office.com") or host == "outlook.office.com"
        ):
            # Microsoft retired Office 365 connectors (docs/RUNBOOK.md, Alerts): only Workflows URLs work.
            raise AlertsError("that is a retired Office 365 connector URL; create a Teams Workflows webhook "
                              "instead", field="url")
    return ""


def receiver_set(
    *,
    name: str,
    kind: str,
    url: str | None = None,
    secret: str | None = None,
    addresses: str | None = None,
    send_resolved: bool | None = None,
    enabled: bool | None = None,
    actor: Actor | None = None,
) -> Receiver:
    """Create or change a receiver; the URL and secret are stored encrypted (never shown again).

    An argument left None keeps the stored value (a new receiver: the model's default). With an
    `actor` (admin, a command) the change is a staff action: audited in the same transaction, the
    URL and secret named as changed but never written to the audit.
    """
    name = name.strip()
    if not name or len(name) > 100:
        raise AlertsError("a receiver needs a name of 1-100 characters", field="name")
    with transaction.atomic():
        receiver = Receiver.objects.select_for_update().filter(name=name).first()
        will_be_enabled = enabled if enabled is not None else receiver is None or receiver.enabled
        addresses = receiver_check(kind=kind, url=url, addresses=addresses, enabled=will_be_enabled)
        if receiver is None:
            if kind not in (ReceiverKind.EMAIL, ReceiverKind.DEMO) and not url:
                raise AlertsError("a new webhook receiver needs its URL", field="url")
            receiver = Receiver(name=name)
        created = receiver.pk is None
        before = {} if created else _receiver_fields(receiver)
        receiver.kind = kind
        if kind == ReceiverKind.EMAIL:
            receiver.addresses, receiver.url_encrypted, receiver.url_hint = addresses, "", ""
        elif url:
            receiver.url_encrypted, receiver.url_hint = encrypt_text(url), _url_hint(url)
        if secret is not None:
            receiver.secret_encrypted = encrypt_text(secret)
        if send_resolved is not None:
            receiver.send_resolved = send_resolved
        if enabled is not None:
            receiver.enabled = enabled
        receiver.save()
        if actor is not None:
            after = _receiver_fields(receiver)
            changes = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
            # Credentials are named, never recorded (docs/SYSTEM_OVERVIEW.md, "Staff actions").
            for name, given in (("url", url), ("secret", secret)):
                if given:
                    changes[name] = ["(hidden)", "(new)"]
            if created or changes:
                staff_action_record(actor=actor, object_type="alerts.receiver", object_ids=[receiver.pk],
                                    action="alert_receiver.create" if created else "alert_receiver.update",
                                    changes=changes)
    return receiver


def receiver_test(*, receiver: Receiver, now: dt.datetime | None = None) -> DeliveryAttempt:
    """Send a test notification to one receiver now (one attempt, logged like any other)."""
    now = current_time(now)
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
    attempt = attempt_record(notification=notification, receiver=receiver, number=1, started_at=started,
                              outcome=outcome)
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.DELIVERED if outcome.ok else NotificationStatus.FAILED,
        attempts=1,
        delivered_at=timezone.now() if outcome.ok else None,
        lease_until=None,
    )
    return attempt


def silence_check(
    *,
    matchers: list[dict[str, str]],
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    comment: str,
    weekdays: list[int] | None = None,
    hour_start: int | None = None,
    hour_end: int | None = None,
) -> tuple[list[dict[str, str]], list[int]]:
    """Check a silence before it is made; return its matchers and weekdays normalized, or raise
    AlertsError naming the field at fault. The admin form and `silence_create` both ask it.

    A recurring window runs from `hour_start` to `hour_end` local time on each of its weekdays; an end
    at or before the start crosses midnight into the next day (22 to 6 is one night), docs/RUNBOOK.md
    "In admin".
    """
    if not matchers:
        raise AlertsError("a silence needs at least one matcher", field="matchers")
    try:
        matchers = [matcher_check(m) for m in matchers]
    except MatcherError as exc:
        raise AlertsError(str(exc), field="matchers") from exc
    if ends_at <= starts_at:
        raise AlertsError("a silence must end after it starts", field="ends_at")
    if not comment.strip():
        raise AlertsError("a silence needs a comment (why, and who to ask)", field="comment")
    days = sorted(set(weekdays or []))
    if any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
        raise AlertsError("weekdays are 0 (Monday) to 6 (Sunday)", field="weekdays")
    if hour_start is not None and not 0 <= hour_start <= 23:
        raise AlertsError("the window's start hour is 0 to 23", field="hour_start")
    if hour_end is not None and not 0 <= hour_end <= 24:
        raise AlertsError("the window's end hour is 0 to 24", field="hour_end")
    if (hour_start is not None or hour_end is not None) and not days:
        raise AlertsError("a window of hours needs its weekdays", field="weekdays")
    if hour_start is not None and hour_start == hour_end:
        raise AlertsError("the window's end hour must differ from its start hour (0 to 24 is all day)",
                          field="hour_end")
    return matchers, days


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
    actor: Actor | None = None,
) -> Silence:
    """Mute matching alerts from `starts_at` (now) to `ends_at`; recurring when weekdays are given.

    With an `actor` (admin, a command) the silence is a staff action, audited in its transaction.
    """
    starts_at = starts_at or timezone.now()
    matchers, weekdays = silence_check(matchers=matchers, starts_at=starts_at, ends_at=ends_at,
                                       comment=comment, weekdays=weekdays, hour_start=hour_start,
                                       hour_end=hour_end)
    if not created_by.strip():
        raise AlertsError("a silence needs an author")
    with transaction.atomic():
        silence = Silence.objects.create(
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by.strip()[:150],
            comment=comment.strip(),
            weekdays=weekdays,
            hour_start=hour_start,
            hour_end=hour_end,
        )
        if actor is not None:
            staff_action_record(actor=actor, action="alert_silence.create", object_type="alerts.silence",
                                object_ids=[silence.pk], detail={
                                    "matchers": matchers_text(matchers), "starts_at": starts_at.isoformat(),
                                    "ends_at": ends_at.isoformat(), "comment": silence.comment})
    return silence


def silence_from_alert(*, alert: Alert, created_by: str, minutes: int = 120, comment: str = "",
                       actor: Actor | None = None) -> Silence:
    """Silence exactly this alert (every one of its labels) for `minutes` (the admin's one click)."""
    now = timezone.now()
    matchers = [{"name": k, "op": "=", "value": str(v)} for k, v in sorted(alert.labels.items())]
    return silence_create(
        matchers=matchers,
        starts_at=now,
        ends_at=now + dt.timedelta(minutes=minutes),
        created_by=created_by,
        comment=comment or f"Silenced from alert {alert.fingerprint} ({matchers_text(matchers)})",
        actor=actor,
    )


def silence_expire(*, silence: Silence, now: dt.datetime | None = None, actor: Actor | None = None) -> bool:
    """End a silence now (Alertmanager's expire); False when it had ended already."""
    now = current_time(now)
    # A silence that never started is ended at its start, so it never mutes anything.
    ends_at = silence.starts_at if silence.starts_at > now else now
    with transaction.atomic():
        expired = bool(
            Silence.objects.filter(pk=silence.pk, ends_at__gt=now).update(
                ends_at=ends_at, expired_early_at=now, updated_at=now
            )
        )
        if expired and actor is not None:
            staff_action_record(actor=actor, action="alert_silence.expire", object_type="alerts.silence",
                                object_ids=[silence.pk], changes={"ends_at": [silence.ends_at.isoformat(),
                                                                              ends_at.isoformat()]})
    return expired


# What a route change records: its place in the tree, what it matches, where it sends, its timers.
ROUTE_FIELDS = ("parent_id", "position", "name", "matchers", "receiver_id", "continue_matching", "group_by",
                "group_wait_s", "group_interval_s", "repeat_interval_s")


def route_save(*, route: Route, actor: Actor) -> Route:
    """Create or change a route of the tree (admin), audited field by field in the same transaction."""
    with transaction.atomic():
        created = route.pk is None
        stored = None if created else Route.objects.select_for_update().filter(pk=route.pk).first()
        before = field_values(stored, ROUTE_FIELDS) if stored else {}
        route.save()
        changes = ({name: [None, value] for name, value in field_values(route, ROUTE_FIELDS).items()}
                   if created else field_changes(before, route))
        staff_action_record(actor=actor, action="alert_route.create" if created else "alert_route.update",
                            object_type="alerts.route", object_ids=[route.pk], changes=changes)
    return route


def routes_delete(*, routes: list[Route], actor: Actor) -> int:
    """Delete routes (and, by cascade, their children), audited as one staff action."""
    ids = [route.pk for route in routes]
    with transaction.atomic():
        deleted, _ = Route.objects.filter(pk__in=ids).delete()
        staff_action_record(actor=actor, action="alert_route.delete", object_type="alerts.route",
                            object_ids=ids, detail={"names": [route.name for route in routes]})
    return deleted


def alerts_history_purge(*, older_than: dt.datetime, dry_run: bool = False) -> dict[str, int]:
    """Forget resolved alerts, finished notifications (with their attempts) and expired silences
    that ended before `older_than`; firing and pending alerts and live silences are kept. With
    `dry_run`, count them and delete nothing."""
    finished = [NotificationStatus.DELIVERED, NotificationStatus.FAILED]
    with transaction.atomic():
        # Each model's own count: the cascaded rows (delivery attempts, timelines) are not counted.
        notifications = delete_or_count(
            queryset=Notification.objects.filter(status__in=finished, created_at__lt=older_than),
            dry_run=dry_run)
        alerts = delete_or_count(
            queryset=Alert.objects.filter(state=AlertState.RESOLVED, ends_at__lt=older_than), dry_run=dry_run)
        silences = delete_or_count(queryset=Silence.objects.filter(ends_at__lt=older_than), dry_run=dry_run)
    return {"notifications": notifications, "alerts": alerts, "silences": silences}
