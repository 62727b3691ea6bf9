"""`make run`'s living demo shows every part within five minutes (docs/RUNBOOK.md, "The demo").

The demo's own step (`demo_tick`, what the `demo_loop` process runs every 10 s) is driven here with
the clock moved 10 s at a time for five minutes, beside what the other `make run` processes do in
that time: the alert evaluator's round, the q cluster's rollout gates and recurring campaigns, and the
canary's agent (it heartbeats and reports installing what its rollout step gave it).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import DemoMessage, Notification, NotificationStatus
from alerts.services import evaluator_tick
from core.models import StaffAction
from leadops.demo import (
    DEMO_RECEIVER,
    FLAKY_PROVIDER,
    TICK_S,
    demo_jobs_top_up,
    demo_setup,
    demo_tick,
)
from leadops.devserver import demo_updaters
from queueing.models import AttemptEvidence, BreakerTransition, Campaign, Job, JobAttempt, JobState
from queueing.services import campaign_schedules_run
from releases_app.demo import demo_rollout_seed
from releases_app.models import RolloutState, RolloutTarget
from releases_app.services import rollouts_evaluate, update_report_record
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_heartbeat

pytestmark = pytest.mark.django_db

DEMO_MINUTES = 5


def canary_agent(canary: str, version: str) -> None:
    """What the canary's supervising agent does every tick: heartbeat, and install once it is reached."""
    worker = Worker.objects.get(pk=canary)
    reached = RolloutTarget.objects.filter(worker_id=canary, rollout__release__version=version).exists()
    if reached and worker.reported_version != version:
        update_report_record(worker=worker, version=version, stage="installed", ok=True, details={})
    worker_heartbeat(worker=worker, version=version if reached else "demo-1.0.0", status="idle", running_jobs=0,
                     metrics=None, ip="127.0.0.1")


def test_five_minutes_of_the_demo_show_every_part(clock, admin_user, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    demo_setup()
    demo_jobs_top_up()
    canary = demo_updaters()[0][0]
    rollout = demo_rollout_seed(canary=canary)
    version = rollout.release.version
    started = timezone.now()

    for tick in range(DEMO_MINUTES * 60 // TICK_S):
        clock.shift(dt.timedelta(seconds=TICK_S))
        demo_jobs_top_up()
        demo_tick()
        canary_agent(canary, version)
        evaluator_tick()
        if tick % 6 == 5:  # the q cluster's one-minute schedules
            rollouts_evaluate()
            campaign_schedules_run()

    # A delivered notification in the demo inbox, as Slack, Teams and email would have shown it.
    delivered = Notification.objects.filter(receiver__name=DEMO_RECEIVER, status=NotificationStatus.DELIVERED)
    assert delivered.exists()
    message = DemoMessage.objects.filter(status="firing").order_by("created_at").first()
    assert message is not None and "breaker_open" in message.summary
    assert message.slack["blocks"] and message.teams["attachments"] and "RUNBOOK" in message.email_body

    # A dead job with its evidence: the error, a screenshot and the worker's log tail.
    dead = Job.objects.filter(provider__name=FLAKY_PROVIDER, state=JobState.DEAD).first()
    assert dead is not None and dead.dead_reason == "non_retryable_error"
    assert dead.last_error["code"] == "captcha_blocked"
    assert AttemptEvidence.objects.filter(job_id=dead.pk).exists()
    attempt = JobAttempt.objects.get(job=dead)
    assert "captcha" in (attempt.log_tail or "")

    # The flaky provider's breaker opened, then closed again.
    moves = list(BreakerTransition.objects.filter(key=FLAKY_PROVIDER).order_by("at", "id")
                 .values_list("to_state", flat=True))
    assert "open" in moves and "closed" in moves[moves.index("open"):], moves

    # The rollout waits for a human's approval.
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.WAITING_APPROVAL, (rollout.state, rollout.state_reason)

    # Recurring work keeps jobs flowing: the scheduled campaign ran by itself.
    assert Campaign.objects.filter(schedule__gt="", runs__isnull=False).exists()

    # Everything the demo did by itself is logged as the demo, never as the signed-in admin.
    since = StaffAction.objects.filter(created_at__gte=started - dt.timedelta(minutes=1))
    assert since.filter(actor_name="demo").exists()
    assert not StaffAction.objects.filter(actor_name=admin_user.username).exists()


def test_a_demo_rollout_paused_for_too_little_data_is_resumed_by_the_demo(clock, settings, tmp_path):
    from leadops.demo import demo_rollout_nudge

    settings.MEDIA_ROOT = str(tmp_path / "media")
    demo_setup()
    canary = demo_updaters()[0][0]
    rollout = demo_rollout_seed(canary=canary)
    worker = Worker.objects.get(pk=canary)
    # The canary heartbeats but, on a busy machine, has not installed the release when the hold ends.
    clock.shift(dt.timedelta(minutes=3))
    worker_heartbeat(worker=worker, version="demo-1.0.0", status="idle", running_jobs=0, metrics=None,
                     ip="127.0.0.1")
    rollouts_evaluate()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.PAUSED and rollout.state_reason.startswith("too little data")

    assert demo_rollout_nudge()
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING
    assert StaffAction.objects.get(action="rollout.resume").actor_name == "demo"


def test_the_demo_inbox_is_refused_outside_development(settings):
    from alerts.services import AlertsError, receiver_set

    settings.LEADOPS_DEVELOPMENT = False
    with pytest.raises(AlertsError, match="development"):
        receiver_set(name="Demo inbox", kind="demo")
