"""Reads of the alerting state: active silences, the route tree, firing counts, the next due moment."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from alerts.matchers import matches
from alerts.models import (
    Alert,
    AlertGroup,
    AlertRule,
    AlertState,
    DeliveryAttempt,
    Notification,
    NotificationStatus,
    Receiver,
    ReceiverKind,
    Route,
    Silence,
)


@dataclass(frozen=True)
class Timers:
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float


@dataclass(frozen=True)
class Destination:
    """Where one alert goes: a receiver, the route that chose it, and how that route groups."""

    receiver_id: int
    route_id: int | None
    group_by: tuple[str, ...]
    timers: Timers


def default_timers() -> Timers:
    return Timers(
        float(settings.LEADOPS_ALERT_GROUP_WAIT_S),
        float(settings.LEADOPS_ALERT_GROUP_INTERVAL_S),
        float(settings.LEADOPS_ALERT_REPEAT_INTERVAL_S),
    )


DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname",)


def fingerprint_of(labels: dict[str, str]) -> str:
    """The identity of an alert: a hash of its sorted labels (annotations are not part of it)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_key_of(*, receiver_id: int, route_id: int | None, group_labels: dict[str, str]) -> str:
    text = json.dumps(
        [receiver_id, route_id, sorted(group_labels.items())], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def group_labels_of(labels: dict[str, str], group_by: tuple[str, ...]) -> dict[str, str]:
    """The labels an alert is grouped by; `...` groups by every label (no grouping at all)."""
    if "..." in group_by:
        return dict(labels)
    return {name: labels[name] for name in group_by if name in labels}


# ----- silences ---------------------------------------------------------------------------------


def silence_is_active(silence: Silence, now: dt.datetime) -> bool:
    """Whether the silence mutes now: inside its window and, when recurring, inside its local hours."""
    if not (silence.starts_at <= now < silence.ends_at):
        return False
    if not silence.weekdays:
        return True
    local = timezone.localtime(now)
    start = silence.hour_start if silence.hour_start is not None else 0
    end = silence.hour_end if silence.hour_end is not None else 24
    if start < end:
        return local.weekday() in silence.weekdays and start <= local.hour < end
    # The window crosses midnight: it opens on one of its weekdays and closes the next morning.
    yesterday = (local.weekday() - 1) % 7
    return ((local.weekday() in silence.weekdays and local.hour >= start)
            or (yesterday in silence.weekdays and local.hour < end))


def silence_state(silence: Silence, now: dt.datetime) -> str:
    if now >= silence.ends_at:
        return "expired"
    if now < silence.starts_at:
        return "pending"
    return "active" if silence_is_active(silence, now) else "waiting for its window"


def silences_active(*, now: dt.datetime) -> list[Silence]:
    candidates = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now).order_by("id")
    return [silence for silence in candidates if silence_is_active(silence, now)]


def labels_silenced(labels: dict[str, str], silences: list[Silence]) -> bool:
    return any(matches(silence.matchers, labels) for silence in silences)


# ----- routing ----------------------------------------------------------------------------------


@dataclass
class RouteNode:
    route: Route
    children: list[RouteNode]


def route_tree() -> list[RouteNode]:
    """The top-level routes with their children, in matching order (one query)."""
    routes = list(Route.objects.order_by("position", "id"))
    nodes = {route.pk: RouteNode(route, []) for route in routes}
    top: list[RouteNode] = []
    for route in routes:
        (nodes[route.parent_id].children if route.parent_id in nodes else top).append(nodes[route.pk])
    return top


def _inherit(
    route: Route, parent: tuple[int | None, tuple[str, ...], Timers]
) -> tuple[int | None, tuple[str, ...], Timers]:
    receiver_id, group_by, timers = parent
    return (
        route.receiver_id or receiver_id,
        tuple(route.group_by) if route.group_by else group_by,
        Timers(
            float(route.group_wait_s) if route.group_wait_s is not None else timers.group_wait_s,
            float(route.group_interval_s) if route.group_interval_s is not None else timers.group_interval_s,
            float(route.repeat_interval_s)
            if route.repeat_interval_s is not None
            else timers.repeat_interval_s,
        ),
    )


def _route_match(
    nodes: list[RouteNode], labels: dict[str, str], parent: tuple[int | None, tuple[str, ...], Timers]
) -> list[Destination]:
    """Depth first, like Alertmanager: the first matching node wins unless it says continue."""
    found: list[Destination] = []
    for node in nodes:
        if not matches(node.route.matchers or [], labels):
            continue
        settings_here = _inherit(node.route, parent)
        deeper = _route_match(node.children, labels, settings_here)
        if deeper:
            found.extend(deeper)
        elif settings_here[0] is not None:
            found.append(Destination(settings_here[0], node.route.pk, settings_here[1], settings_here[2]))
        if not node.route.continue_matching:
            break
    return found


def alert_destinations(
    labels: dict[str, str], *, tree: list[RouteNode], receiver_ids: list[int], timers: Timers
) -> list[Destination]:
    """Where an alert goes: the routes it matches, or every enabled receiver when it matches none."""
    found = _route_match(tree, labels, (None, DEFAULT_GROUP_BY, timers))
    enabled = set(receiver_ids)
    found = [d for d in found if d.receiver_id in enabled]
    if found:
        return found
    return [Destination(rid, None, DEFAULT_GROUP_BY, timers) for rid in receiver_ids]


def receivers_enabled_ids() -> list[int]:
    return list(Receiver.objects.filter(enabled=True).order_by("id").values_list("id", flat=True))


# ----- counts and timing ------------------------------------------------------------------------


def alerts_firing_count() -> int:
    return Alert.objects.filter(state=AlertState.FIRING).count()


def alerts_firing_by_rule() -> dict[str, int]:
    """Firing alerts per rule kind, every rule listed (zero included) so a metric never disappears."""
    rows = AlertRule.objects.annotate(firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING)))
    return {rule.kind: rule.firing for rule in rows.order_by("kind")}


def next_due_at() -> dt.datetime | None:
    """The earliest group flush or delivery retry that is scheduled (the evaluator sleeps until then)."""
    flush = AlertGroup.objects.filter(next_flush_at__isnull=False).aggregate(at=Min("next_flush_at"))["at"]
    retry = Notification.objects.filter(status=NotificationStatus.PENDING).aggregate(
        at=Min("next_attempt_at")
    )["at"]
    moments = [moment for moment in (flush, retry) if moment is not None]
    return min(moments) if moments else None


# ----- readiness (docs/PRODUCTION_READINESS.md, "alerts") -----------------------------------------


def rules_enabled() -> dict[str, bool]:
    return dict(AlertRule.objects.values_list("kind", "enabled"))


def evaluator_last_run_at() -> dt.datetime | None:
    """When an evaluator last evaluated the rules (any process)."""
    return AlertRule.objects.aggregate(at=Max("last_evaluated_at"))["at"]


def receivers_for_kinds(*, kinds: list[str]) -> dict[str, list[str]]:
    """Per rule kind: the names of the receivers its alerts go to now (routes, or every receiver)."""
    tree = route_tree()
    enabled_ids = receivers_enabled_ids()
    names = dict(Receiver.objects.values_list("id", "name"))
    severities = dict(AlertRule.objects.values_list("kind", "severity"))
    routed: dict[str, list[str]] = {}
    for kind in kinds:
        labels = {"alertname": kind, "severity": severities.get(kind, "warning")}
        destinations = alert_destinations(labels, tree=tree, receiver_ids=enabled_ids,
                                          timers=default_timers())
        routed[kind] = sorted({names[d.receiver_id] for d in destinations if d.receiver_id in names})
    return routed


def receiver_names_demo() -> set[str]:
    """Names of the demo inbox receivers: they keep what they are sent in the portal, reaching no one."""
    return set(Receiver.objects.filter(kind=ReceiverKind.DEMO).values_list("name", flat=True))


def receiver_last_attempts(*, names: list[str]) -> dict[str, dict[str, Any]]:
    """The newest delivery attempt (test or real) of each named receiver: when, whether it worked."""
    last: dict[str, dict[str, Any]] = {}
    for name in names:
        attempt = (DeliveryAttempt.objects.filter(receiver__name=name)
                   .order_by("-started_at", "-id").values("started_at", "ok", "status_code", "error").first())
        if attempt is not None:
            last[name] = dict(attempt)
    return last


def delivery_log_rows(*, since: dt.datetime) -> list[dict[str, object]]:
    """Delivery attempts since `since`, newest first, as plain values (no URL, no secret)."""
    rows = (DeliveryAttempt.objects.filter(started_at__gte=since).select_related("receiver", "notification")
            .order_by("-started_at", "-id")[:2000])
    return [{"receiver": a.receiver.name, "kind": a.receiver.kind, "started_at": a.started_at.isoformat(),
             "ok": a.ok, "status_code": a.status_code, "latency_ms": a.latency_ms,
             "test": a.notification.is_test, "summary": a.notification.summary} for a in rows]


def rule_rows() -> list[dict[str, object]]:
    return [{"kind": r.kind, "enabled": r.enabled, "threshold": r.threshold, "for_seconds": r.for_seconds,
             "severity": r.severity,
             "last_evaluated_at": r.last_evaluated_at.isoformat() if r.last_evaluated_at else None}
            for r in AlertRule.objects.order_by("kind")]


def alert_notification_history(*, alert_id: int) -> list[dict[str, Any]]:
    """What was sent about one alert, newest first: to which receiver, when, why, with what result and
    latency (condition -> delivered, and each attempt's round trip)."""
    notifications = (Notification.objects.filter(alerts__id=alert_id).select_related("receiver")
                     .prefetch_related("delivery_attempts").order_by("-created_at", "-id"))
    history = []
    for notification in notifications:
        delivered, condition = notification.delivered_at, notification.condition_at
        history.append({
            "id": notification.pk,
            "created_at": notification.created_at,
            "receiver": notification.receiver.name,
            "kind": notification.receiver.get_kind_display(),
            "reason": notification.reason or "-",
            "status": notification.status,
            "summary": notification.summary,
            "delivered_at": delivered,
            "latency_s": (delivered - condition).total_seconds() if delivered and condition else None,
            "send_latency_s": (delivered - notification.created_at).total_seconds() if delivered else None,
            "attempts": [{"number": a.number, "started_at": a.started_at, "ok": a.ok,
                          "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
                         for a in sorted(notification.delivery_attempts.all(), key=lambda a: a.number)],
        })
    return history
