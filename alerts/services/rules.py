"""Rules: the built-in rules, their settings, and one evaluation round (pending -> firing -> resolved)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db import transaction
from django.db.models import Q

from alerts.evidence import change_class, change_of, evidence_read
from alerts.models import (
    Alert,
    AlertEvent,
    AlertRule,
    AlertState,
    RuleKind,
    Severity,
)
from alerts.rules import CONDITIONS, DEFAULTS, Condition, ConditionUnavailable
from alerts.selectors import (
    fingerprint_of,
)
from alerts.services.base import AlertsError, current_time, skip_locked
from core import events
from core.audit import Actor, staff_action_record


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
    actor: Actor | None = None,
) -> AlertRule:
    """Change a built-in rule (created with its defaults first when missing).

    With an `actor` (admin, a command) a change is a staff action, audited field by field.
    """
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
        before = {}
        for name, value in (
            ("threshold", threshold),
            ("for_seconds", for_seconds),
            ("enabled", enabled),
            ("severity", severity),
            ("labels", labels),
        ):
            if value is not None and getattr(rule, name) != value:
                before[name] = getattr(rule, name)
                setattr(rule, name, value)
                changed.append(name)
        if changed:
            rule.save(update_fields=[*changed, "updated_at"])
            if actor is not None:
                staff_action_record(actor=actor, action="alert_rule.update", object_type="alerts.alertrule",
                                    object_ids=[rule.kind],
                                    changes={name: [before[name], getattr(rule, name)] for name in changed})
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
    now = current_time(now)
    counts: dict[str, int] = defaultdict(int)
    rules_ensure()
    for rule_id in AlertRule.objects.order_by("kind").values_list("id", flat=True):
        with transaction.atomic():
            rule = skip_locked(AlertRule.objects.filter(pk=rule_id)).first()
            if rule is None:
                continue  # another evaluator is evaluating this rule right now
            try:
                conditions = CONDITIONS[rule.kind](rule.threshold, now) if rule.enabled else []
            except ConditionUnavailable:
                continue
            for name, value in _rule_apply(rule, conditions, now).items():
                counts[name] += value
    # One stamp per round: readiness tells from it that an evaluator is running.
    AlertRule.objects.update(last_evaluated_at=now)
    return dict(counts)


def _acknowledgement_check(alert: Alert, kind: str, now: dt.datetime) -> list[AlertEvent]:
    """End the acknowledgement of an alert that changed (alerts/evidence.py, `change_of`)."""
    if alert.acknowledged_at is None:
        return []
    current = change_class(kind=kind, severity=alert.labels.get("severity", ""), value=alert.value,
                           evidence=alert.evidence)
    why = change_of(alert.acknowledged_class, current)
    if not why:
        return []
    # Compare-and-swap on the acknowledgement we read: one given meanwhile (staff acknowledging the
    # changed alert again) is never overwritten; the round's other fields never touch it.
    ended = Alert.objects.filter(pk=alert.pk, acknowledged_at=alert.acknowledged_at).update(
        acknowledged_at=None, acknowledged_by="", acknowledged_class="", updated_at=now)
    alert.acknowledged_at, alert.acknowledged_by, alert.acknowledged_class = None, "", ""
    if not ended:
        return []
    return [AlertEvent(alert=alert, at=now, kind="unacknowledged", detail=f"it changed: {why}"[:300])]


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
        evidence = evidence_read(kind=rule.kind, labels=labels, threshold=rule.threshold, now=now)
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
                # A new streak starts unacknowledged (an acknowledgement ends when its alert resolves).
                "evidence": evidence,
                "acknowledged_at": None,
                "acknowledged_by": "",
                "acknowledged_class": "",
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
        alert.evidence = evidence
        timeline += _acknowledgement_check(alert, rule.kind, now)
        if alert.state == AlertState.PENDING and now - alert.active_since >= hold:
            # Compare-and-swap on the state we read: a concurrent change is never overwritten.
            if Alert.objects.filter(pk=alert.pk, state=AlertState.PENDING).update(
                state=AlertState.FIRING,
                starts_at=now,
                value=alert.value,
                annotations=annotations,
                evidence=evidence,
                last_evaluated_at=now,
                updated_at=now,
            ):
                alert.state, alert.starts_at = AlertState.FIRING, now
                counts["firing"] += 1
                fired.append(alert)
            continue
        steady.append(alert)
    # Alerts that stay as they were: one UPDATE for all of them, however many workers are silent.
    Alert.objects.bulk_update(steady, ["value", "annotations", "evidence", "last_evaluated_at"],
                              batch_size=500)
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
