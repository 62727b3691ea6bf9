"""Alert states: pending for `for` seconds, then firing, then resolved; identity by labels."""

import datetime as dt

import pytest

from alerts.models import Alert, AlertState
from alerts.selectors import fingerprint_of
from alerts.services import alerts_evaluate, rule_set
from core import events
from tests.alerts.factories import heartbeat, silent_workers


@pytest.fixture
def published():
    seen = []
    events.sink_register(seen.append)
    yield seen
    events.sink_unregister(seen.append)


def test_heartbeat_alert_is_pending_then_firing_then_resolved(clock, db, published, django_capture_on_commit_callbacks):
    rule_set(kind="heartbeat_missing", threshold=60, for_seconds=30)
    [worker] = silent_workers(1, silent_for_s=61)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.state == AlertState.PENDING
    assert alert.labels == {"alertname": "heartbeat_missing", "severity": "critical", "worker": worker}
    assert alert.fingerprint == fingerprint_of(alert.labels)
    # The condition began when the heartbeat became overdue, one second before this evaluation.
    assert alert.active_since == dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)

    clock.shift(28)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()
    assert Alert.objects.get().state == AlertState.PENDING  # 29 s of a 30 s `for`

    clock.shift(2)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING and alert.starts_at is not None
    assert [e["type"] for e in published] == ["alert.firing"]
    assert published[0]["data"]["labels"]["worker"] == worker

    heartbeat([worker])
    clock.shift(5)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and alert.ends_at is not None
    assert [e["type"] for e in published] == ["alert.firing", "alert.resolved"]
    assert [e.kind for e in alert.timeline.all()] == ["pending", "firing", "resolved"]


def test_a_pending_alert_that_clears_never_fires(clock, db, published, django_capture_on_commit_callbacks):
    rule_set(kind="heartbeat_missing", threshold=60, for_seconds=60)
    [worker] = silent_workers(1, silent_for_s=70)
    alerts_evaluate()
    heartbeat([worker])
    clock.shift(10)
    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate()
    alert = Alert.objects.get()
    assert alert.state == AlertState.RESOLVED and alert.starts_at is None
    assert published == []


def test_the_same_labels_fire_again_as_the_same_alert(clock, db):
    [worker] = silent_workers(1, silent_for_s=120)
    alerts_evaluate()
    heartbeat([worker])
    clock.shift(10)
    alerts_evaluate()
    clock.shift(200)
    alerts_evaluate()
    assert Alert.objects.count() == 1
    assert Alert.objects.get().state == AlertState.FIRING


def test_a_disabled_rule_resolves_its_alerts(clock, db):
    silent_workers(2, silent_for_s=120)
    alerts_evaluate()
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 2
    rule_set(kind="heartbeat_missing", enabled=False)
    clock.shift(10)
    alerts_evaluate()
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 0


def test_rule_labels_and_severity_are_on_every_alert(clock, db):
    rule_set(kind="heartbeat_missing", severity="warning", labels={"team": "fleet"})
    silent_workers(1, silent_for_s=120)
    alerts_evaluate()
    labels = Alert.objects.get().labels
    assert labels["severity"] == "warning" and labels["team"] == "fleet"
