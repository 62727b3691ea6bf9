"""One installation from no-go to go, gate by gate, through the real commands and services, and back
to no-go when the receiver starts failing (`readiness_lost` fires). docs/PRODUCTION_READINESS.md."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from alerts.models import Alert, AlertState
from queueing.services import BreakerAction, breaker_force
from tests.factories import make_worker
from tests.leadops.readiness_install import publish, readiness_json, roll_out, rotate_and_use
from workers_mgmt.models import WorkerCredential

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def gates(capsys) -> tuple[int, dict[str, dict]]:
    code, answer = readiness_json(capsys)
    return code, {gate["name"]: gate for gate in answer["gates"]}


def test_from_no_go_to_go_gate_by_gate_and_back_and_forth(capsys, client, tmp_path, http_receiver, settings):
    settings.LEADOPS_ALERT_GROUP_WAIT_S = 3600.0  # the evaluator must not send to the failing receiver here
    _, issued = make_worker(worker_id="pilot-1", channel="stable")
    call_command("enqueue_jobs", "--provider", "maps", "--count", "3")
    breaker_force(scope="provider", key="maps", action=BreakerAction.FORCE_CLOSED)
    WorkerCredential.objects.filter(worker_id="pilot-1").update(
        created_at=timezone.now() - dt.timedelta(days=100))

    code, before = gates(capsys)
    assert code == 1 and not any(gate["ok"] for gate in before.values())
    assert "rotate_worker_secret pilot-1" in before["secrets"]["why"]
    assert "channel stable: no release published on it" in before["updates"]["why"]
    assert "maps: breaker held closed by staff" in before["breakers_dlq"]["why"]
    assert "provider_set maps" in before["throttling"]["why"]

    # secrets: a push rotation, delivered in a heartbeat and promoted by its first use.
    new_key = rotate_and_use(client, "pilot-1", issued.key_id, issued.secret).key_id
    _, now = gates(capsys)
    assert now["secrets"]["ok"], now["secrets"]["why"]
    assert WorkerCredential.objects.get(pk=new_key).state == "current"

    # updates: the first release, then the next one canary first.
    publish(tmp_path, "1.0.0")
    roll_out("stable", "1.0.0", canary="pilot-1")
    publish(tmp_path, "1.1.0")
    call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", "--canary", "pilot-1")
    _, now = gates(capsys)
    assert not now["updates"]["ok"] and "the rollout of 1.1.0 is" in now["updates"]["why"]
    while not gates(capsys)[1]["updates"]["ok"]:
        call_command("rollout_promote", "--channel", "stable")
    _, now = gates(capsys)
    assert now["updates"]["ok"], now["updates"]["why"]

    # breakers_dlq: the breaker is given back to its policy.
    breaker_force(scope="provider", key="maps", action=BreakerAction.RESET)
    _, now = gates(capsys)
    assert now["breakers_dlq"]["ok"], now["breakers_dlq"]["why"]

    # alerts: a webhook receiver that delivers a test, and an evaluator round.
    call_command("alert_receiver_set", "ops", "--webhook", http_receiver.url("/hook"))
    _, now = gates(capsys)
    assert "receiver ops never delivered" in now["alerts"]["why"]
    call_command("alert_test", "ops")
    call_command("alerts_evaluate", "--once")
    _, now = gates(capsys)
    assert now["alerts"]["ok"], now["alerts"]["why"]

    # privacy: a retention purge run.
    call_command("purge_retention")
    # throttling: a quota on the provider.
    call_command("provider_set", "maps", "--quota-per-min", "60")

    code, now = gates(capsys)
    assert code == 0, {name: gate["why"] for name, gate in now.items() if not gate["ok"]}
    assert all(gate["ok"] for gate in now.values())

    # The receiver starts failing: the alerts gate stops holding, and readiness_lost fires for it.
    http_receiver.script("/hook", [(500, {}, "down")])
    with pytest.raises(CommandError):
        call_command("alert_test", "ops")
    code, now = gates(capsys)
    assert code == 1 and not now["alerts"]["ok"]
    assert "receiver ops's last delivery failed" in now["alerts"]["why"]
    call_command("alerts_evaluate", "--once")
    lost = Alert.objects.get(labels__alertname="readiness_lost")
    assert lost.state == AlertState.FIRING and lost.labels["gate"] == "alerts"

    # The receiver works again: the gate holds, and readiness_lost resolves.
    http_receiver.script("/hook", [])
    call_command("alert_test", "ops")
    code, now = gates(capsys)
    assert code == 0 and now["alerts"]["ok"]
    call_command("alerts_evaluate", "--once")
    lost.refresh_from_db()
    assert lost.state == AlertState.RESOLVED
