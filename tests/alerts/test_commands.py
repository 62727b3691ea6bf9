"""The alert commands: what they change, and a one-line error with a non-zero exit on bad arguments."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from alerts.models import Alert, AlertRule, Receiver
from alerts.services import evaluator_tick
from tests.alerts.factories import silent_workers

BASE_DIR = Path(__file__).resolve().parents[2]


def test_alert_receiver_set_creates_then_changes_a_receiver(db, capsys):
    call_command("alert_receiver_set", "hook", "--webhook", "https://example.com/h", "--secret", "s")
    receiver = Receiver.objects.get(name="hook")
    assert receiver.kind == "webhook" and receiver.secret_encrypted and not receiver.send_resolved
    assert "https://example.com/…" in capsys.readouterr().out
    call_command("alert_receiver_set", "hook", "--slack", "https://hooks.slack.com/services/x", "--send-resolved")
    receiver.refresh_from_db()
    assert receiver.kind == "slack" and receiver.send_resolved
    call_command("alert_receiver_set", "mail", "--email", "a@example.com, b@example.com")
    assert Receiver.objects.get(name="mail").addresses == "a@example.com,b@example.com"


def test_alert_receiver_set_keeps_send_resolved_unless_told(db):
    call_command("alert_receiver_set", "am", "--alertmanager", "http://127.0.0.1:9093", "--send-resolved")
    # Re-running to change only the URL keeps the stored choice (docs/RUNBOOK.md, "Setting up").
    call_command("alert_receiver_set", "am", "--alertmanager", "http://127.0.0.1:9094")
    receiver = Receiver.objects.get(name="am")
    assert receiver.send_resolved and receiver.url_hint == "http://127.0.0.1:9094/…"
    call_command("alert_receiver_set", "am", "--alertmanager", "http://127.0.0.1:9094", "--no-send-resolved")
    receiver.refresh_from_db()
    assert not receiver.send_resolved
    with pytest.raises(CommandError, match="not allowed with"):
        call_command("alert_receiver_set", "am", "--alertmanager", "http://127.0.0.1:9094",
                     "--send-resolved", "--no-send-resolved")


@pytest.mark.parametrize("args, message", [
    (["x"], "one of the arguments"),
    (["x", "--webhook", "ftp://example.com"], r"http\(s\) URL"),
    (["x", "--slack", "https://a", "--secret", "s"], "--secret goes with --webhook only"),
    (["x", "--email", "not-an-address"], "addresses"),
    (["x", "--slack", "https://a", "--teams", "https://b"], "not allowed with"),
    (["x", "--teams", "https://contoso.webhook.office.com/webhookb2/abc"], "retired Office 365 connector"),
])
def test_alert_receiver_set_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("alert_receiver_set", *args)
    assert not Receiver.objects.exists()


def test_alert_rule_set_changes_threshold_for_and_switch(db, capsys):
    call_command("alert_rule_set", "heartbeat_missing", "--threshold", "90", "--for-seconds", "15", "--disable")
    rule = AlertRule.objects.get(kind="heartbeat_missing")
    assert (rule.threshold, rule.for_seconds, rule.enabled) == (90, 15, False)
    assert "disabled, threshold 90" in capsys.readouterr().out
    call_command("alert_rule_set", "heartbeat_missing", "--enable")
    assert AlertRule.objects.get(kind="heartbeat_missing").enabled


@pytest.mark.parametrize("args", [["no_such_rule"], ["error_rate", "--threshold", "-1"],
                                  ["error_rate", "--for-seconds", "-5"], ["error_rate", "--threshold", "many"]])
def test_alert_rule_set_refuses_bad_arguments(db, args):
    with pytest.raises(CommandError):
        call_command("alert_rule_set", *args)


def test_alert_silence_add_refuses_bad_matchers_and_durations(db):
    with pytest.raises(CommandError, match="not a matcher"):
        call_command("alert_silence_add", "--match", "worker", "--minutes", "5", "--comment", "c")
    with pytest.raises(CommandError, match="positive"):
        call_command("alert_silence_add", "--match", "worker=w", "--minutes", "0", "--comment", "c")
    with pytest.raises(CommandError, match="bad regular expression"):
        call_command("alert_silence_add", "--match", "worker=~[", "--minutes", "5", "--comment", "c")


def test_alerts_evaluate_once_runs_one_round(clock, db):
    silent_workers(2, silent_for_s=61)
    call_command("alerts_evaluate", "--once")
    assert Alert.objects.filter(state="firing").count() == 2
    evaluator_tick()  # and a second round changes nothing
    assert Alert.objects.count() == 2


def test_a_bad_argument_is_one_line_on_stderr_and_a_nonzero_exit():
    result = subprocess.run([sys.executable, "manage.py", "alert_rule_set", "no_such_rule"], cwd=BASE_DIR,
                            env={**os.environ, "DATABASE_URL": "sqlite:///:memory:"}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_old_alert_history_is_purged_and_live_state_kept(clock, db):
    import datetime as dt

    from django.utils import timezone

    from alerts.models import Silence
    from alerts.services import alerts_history_purge, silence_create
    from alerts.tasks import purge_alert_history
    from tests.alerts.factories import heartbeat
    from workers_mgmt.models import Worker

    workers = silent_workers(2, silent_for_s=61)
    evaluator_tick()
    silence_create(matchers=[{"name": "worker", "op": "=", "value": "w-x"}], ends_at=timezone.now() + dt.timedelta(hours=1),
                   created_by="ops", comment="old")
    clock.shift(10)
    heartbeat(workers[:1])
    evaluator_tick()
    Worker.objects.filter(id=workers[0]).update(enabled=False)  # retired: never overdue again
    assert purge_alert_history() == {"notifications": 0, "alerts": 0, "silences": 0}
    clock.shift(3600 * 24 * 31)
    heartbeat(workers[1:])  # the other fired all month and resolves only now: it is kept
    evaluator_tick()
    result = alerts_history_purge(older_than=timezone.now() - dt.timedelta(days=30))
    assert result["alerts"] == 1 and result["silences"] == 1
    assert Alert.objects.count() == 1 and not Silence.objects.exists()
