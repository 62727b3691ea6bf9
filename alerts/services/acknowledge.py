"""Acknowledging an alert from its notification's link: no repeats until it resolves or changes."""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from alerts.evidence import change_class
from alerts.models import Alert, AlertEvent, AlertState
from alerts.services.base import AlertsError, current_time
from core.audit import Actor, staff_change


def alert_acknowledge(*, alert_id: int, actor: Actor, now: dt.datetime | None = None) -> Alert:
    """Acknowledge a firing alert: its groups stop repeating it while it keeps its change class
    (alerts/evidence.py); it resolving or changing ends the acknowledgement. Audited (alert.acknowledge)."""
    now = current_time(now)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().select_related("rule").filter(pk=alert_id).first()
        if alert is None:
            raise AlertsError("no such alert")
        if alert.state != AlertState.FIRING:
            raise AlertsError(f"only a firing alert can be acknowledged; this one is {alert.state}")
        detail = {"alertname": alert.labels.get("alertname", ""), "fingerprint": alert.fingerprint,
                  "was_acknowledged_by": alert.acknowledged_by}
        with staff_change(actor=actor, action="alert.acknowledge", object_type="alerts.alert",
                          object_ids=[alert.pk], detail=detail):
            alert.acknowledged_at, alert.acknowledged_by = now, actor.name[:150]
            alert.acknowledged_class = change_class(
                kind=alert.rule.kind, severity=alert.labels.get("severity", ""), value=alert.value,
                evidence=alert.evidence)
            alert.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledged_class",
                                      "updated_at"])
            AlertEvent.objects.create(alert=alert, at=now, kind="acknowledged",
                                      detail=f"by {actor.name}"[:300])
    return alert
