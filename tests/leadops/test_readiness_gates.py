"""Each gate's conditions one by one (docs/PRODUCTION_READINESS.md, "The gates")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.audit import Actor
from leadops.readiness import readiness_check
from queueing.models import Job, JobState
from tests.factories import make_jobs, make_provider, make_worker
from tests.leadops.readiness_install import publish, roll_out
from workers_mgmt.models import WorkerCredential
from workers_mgmt.services import credential_rotate

pytestmark = pytest.mark.django_db


def gate(name: str):
    return readiness_check(only=[name]).gates[0]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_secrets_names_a_worker_without_a_key_and_a_rotation_stuck_past_its_grace():
    worker, _ = make_worker(worker_id="keyless")
    WorkerCredential.objects.filter(worker=worker).update(state="revoked")
    assert "1 enabled worker(s) have no current key (keyless)" in gate("secrets").why

    WorkerCredential.objects.filter(worker=worker).delete()
    other, _ = make_worker(worker_id="slow")
    worker.enabled = False
    worker.save()
    issued = credential_rotate(worker=other, actor=Actor.command("tests"), grace_hours=1)
    assert gate("secrets").ok
    WorkerCredential.objects.filter(pk=issued.key_id).update(created_at=timezone.now() - dt.timedelta(hours=2))
    secrets = gate("secrets")
    assert not secrets.ok and "1 rotation(s) pending past their grace (oldest: slow" in secrets.why


def test_secrets_needs_the_audit_of_every_rotation():
    from workers_mgmt.models import CredentialRotation

    worker, _ = make_worker(worker_id="audited")
    credential_rotate(worker=worker, actor=Actor.command("tests"))
    assert gate("secrets").ok
    # The credential audit saw this one start, but no staff action lists it: not in the one trail.
    unlisted, _ = make_worker(worker_id="unlisted")
    pending = credential_rotate(worker=unlisted, actor="no staff action")
    secrets = gate("secrets")
    assert not secrets.ok and f"missing from the credential audit ({pending.key_id})" in secrets.why
    unlisted.delete()
    assert gate("secrets").ok
    # A rotation written past the services (a restore, a hand-made key): the audit never saw it start.
    # The audit itself is append-only (on PostgreSQL a trigger refuses deletes), so it is added beside it.
    WorkerCredential.objects.filter(worker=worker, state="pending").delete()
    hand_made = WorkerCredential.objects.create(key_id="k-hand-made", worker=worker, secret_encrypted="x",
                                                state="pending")
    CredentialRotation.objects.create(credential=hand_made)
    secrets = gate("secrets")
    assert not secrets.ok and "missing from the credential audit (k-hand-made)" in secrets.why


def test_updates_needs_a_reason_for_a_rollback(tmp_path):
    make_worker(worker_id="pilot-1", channel="stable")
    publish(tmp_path, "1.0.0")
    roll_out("stable", "1.0.0", canary="pilot-1")
    publish(tmp_path, "1.1.0")
    call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", "--canary", "pilot-1")
    call_command("rollout_rollback", "--channel", "stable")
    updates = gate("updates")
    assert not updates.ok and "rolled back without a reason in the last 24 h: 1.1.0" in updates.why

    publish(tmp_path, "1.1.1")
    call_command("rollout_start", "--version", "1.1.1", "--channel", "stable", "--canary", "pilot-1")
    call_command("rollout_rollback", "--channel", "stable", "--reason", "canary crashed on start")
    assert "1.1.1" not in gate("updates").why


def test_updates_refuses_an_expired_manifest(tmp_path):
    from releases_app.models import Channel

    make_worker(worker_id="pilot-1", channel="stable")
    publish(tmp_path, "1.0.0")
    roll_out("stable", "1.0.0", canary="pilot-1")
    Channel.objects.filter(name="stable").update(manifest_expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert "channel stable: manifest expired" in gate("updates").why


def test_breakers_dlq_names_growth_and_dead_jobs_past_their_retention(settings):
    settings.LEADOPS_READINESS_DLQ_GROWTH_PER_HOUR = 1
    jobs = make_jobs(3, provider=make_provider("maps", quota_per_min=10))
    now = timezone.now()
    Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(state=JobState.DEAD, finished_at=now)
    assert "the DLQ grew by 2 jobs in the last hour (limit 1)" in gate("breakers_dlq").why
    Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(finished_at=now - dt.timedelta(days=31))
    breakers = gate("breakers_dlq")
    assert not breakers.ok and "2 dead job(s) older than their 30-day retention" in breakers.why
    call_command("dlq", "requeue", "--provider", "maps")
    assert gate("breakers_dlq").ok


def test_alerts_needs_a_running_evaluator(clock, http_receiver_url):
    call_command("alert_receiver_set", "ops", "--webhook", http_receiver_url)
    call_command("alert_test", "ops")
    call_command("alerts_evaluate", "--once")
    assert gate("alerts").ok
    clock.shift(150)
    alerts = gate("alerts")
    assert not alerts.ok and "the alert evaluator last ran 2 min ago" in alerts.why


def test_alerts_needs_every_seed_rule_on(http_receiver_url):
    call_command("alert_rule_set", "stuck_jobs", "--disable")
    assert "rules off: stuck_jobs (alert_rule_set KIND --enable)" in gate("alerts").why


def test_privacy_fails_when_a_log_handler_lacks_the_pii_filter(settings):
    call_command("purge_retention")
    assert gate("privacy").ok
    settings.LOGGING = {**settings.LOGGING, "handlers": {
        **settings.LOGGING["handlers"], "file": {"class": "logging.FileHandler", "filename": "/dev/null"}}}
    privacy = gate("privacy")
    assert not privacy.ok and privacy.why == "log handler(s) without the PII filter: file"


def test_privacy_needs_a_purge_within_26_hours(clock):
    call_command("purge_retention")
    clock.shift(27 * 3600)
    assert "the retention purge last ran 27 h ago" in gate("privacy").why


def test_throttling_accepts_a_daily_cap():
    make_jobs(1, provider=make_provider("maps"))
    assert not gate("throttling").ok
    call_command("provider_set", "maps", "--daily-cap", "500")
    assert gate("throttling").ok


@pytest.fixture
def http_receiver_url(http_receiver):
    return http_receiver.url("/hook")


def test_a_gate_that_cannot_be_read_does_not_hold_and_the_others_are_still_read(settings):
    settings.LOGGING = None  # the privacy gate reads the logging configuration
    readiness = readiness_check()
    gates = {gate.name: gate for gate in readiness.gates}
    assert not readiness.go and len(gates) == 6
    assert gates["privacy"].why == "could not be checked (AttributeError): see the portal's log"
    assert gates["secrets"].ok and gates["throttling"].ok


def selectors_routed() -> dict[str, list[str]]:
    from alerts.selectors import receivers_for_kinds

    return receivers_for_kinds(kinds=["heartbeat_missing"])


def test_alerts_does_not_count_the_demo_inbox_as_reaching_staff(http_receiver_url):
    """make run's demo inbox keeps alerts inside the portal: it delivers, but tells no one."""
    from leadops.demo import demo_setup

    demo_setup()
    call_command("alert_test", "Demo inbox")
    call_command("alerts_evaluate", "--once")
    alerts = gate("alerts")
    assert not alerts.ok
    assert "no receiver gets heartbeat_missing" in alerts.why
    assert "only the demo inbox Demo inbox, which reaches no one" in alerts.why
    assert "Demo inbox" not in alerts.detail["receivers"]
    # A real receiver that delivers, routed beside the demo inbox: the gate holds, the demo inbox still
    # left out of the count.
    from alerts.models import Receiver, Route
    from alerts.services import route_save
    from leadops.demo import DEMO_ROUTE

    call_command("alert_receiver_set", "ops", "--webhook", http_receiver_url)
    call_command("alert_test", "ops")
    Route.objects.filter(name=DEMO_ROUTE).update(continue_matching=True)
    route_save(route=Route(name="ops: everything", matchers=[], receiver=Receiver.objects.get(name="ops"),
                           position=1), actor=Actor.command("tests"))
    assert set(selectors_routed()["heartbeat_missing"]) == {"Demo inbox", "ops"}
    alerts = gate("alerts")
    assert alerts.ok, alerts.why
    assert alerts.detail["receivers"] == ["ops"]
