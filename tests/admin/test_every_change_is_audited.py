"""The one audit trail, proved from the live admin site (docs/SYSTEM_OVERVIEW.md, "Staff actions").

Every action a registered ModelAdmin offers (`get_actions`, as a superuser sees them), every extra
admin page that changes state (`get_urls` beyond Django's own five) and every admin that may delete
is listed from the site itself, not typed here: each must have a scenario below, and running it
must leave exactly one StaffAction row and no LogEntry. A new action, page or delete that nobody
wired to the audit has no scenario, and `test_the_scenarios_cover_the_live_admin_site` fails.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from alerts.models import Alert, AlertRule, Route, Silence
from alerts.services import receiver_set, silence_create
from core.audit import Actor
from core.models import StaffAction
from ingestion.privacy import suppression_add
from ingestion.schema import parse_lead_rows
from ingestion.services import lead_batch_ingest
from queueing.models import Breaker, Campaign, Job, JobState
from queueing.services import campaign_create, jobs_cancel
from releases_app.models import Channel, Release
from releases_app.services import (
    release_publish,
    rollout_pause,
    rollout_promote,
    rollout_start,
    worker_pin_set,
)
from tests.factories import lead, make_jobs, make_provider, make_worker
from tests.releases_app.builders import tar_artifact
from workers_mgmt.models import WorkerCredential

SETUP = Actor.command("tests")
DJANGO_VIEWS = ("changelist", "add", "history", "delete", "change")
# Extra admin pages that only read: they may not write a row (checked below with a GET).
READ_ONLY_VIEWS = {"queueing_attemptevidence_file", "ingestion_erasurereceipt_document"}


@dataclass
class Step:
    """One request through the admin: POST `data` to `url` (a changelist action when `data` names one)."""

    url: str
    data: dict[str, Any] = field(default_factory=dict)


def superuser_request() -> Any:
    request = RequestFactory().get("/admin/")
    request.user = User(username="audit", is_superuser=True, is_staff=True, is_active=True)
    return request


def live_admins() -> list[tuple[type, admin.ModelAdmin]]:
    request = superuser_request()
    return [(model["model"], admin.site.get_model_admin(model["model"]))
            for app in admin.site.get_app_list(request) for model in app["models"]]


def label(model: type) -> str:
    return model._meta.label_lower


def live_actions() -> set[str]:
    request = superuser_request()
    return {f"{label(model)}:{name}" for model, model_admin in live_admins()
            for name in model_admin.get_actions(request)}


def live_extra_views() -> set[str]:
    names = set()
    for model, model_admin in live_admins():
        own = {f"{model._meta.app_label}_{model._meta.model_name}_{view}" for view in DJANGO_VIEWS}
        names |= {pattern.name for pattern in model_admin.get_urls() if pattern.name and pattern.name not in own}
    return names


def live_deleters() -> set[str]:
    request = superuser_request()
    return {label(model) for model, model_admin in live_admins() if model_admin.has_delete_permission(request)}


def action(model: str, name: str, pks: list[Any]) -> Step:
    app, model_name = model.split(".")
    return Step(reverse(f"admin:{app}_{model_name}_changelist"),
                {"action": name, "_selected_action": [str(pk) for pk in pks], "post": "yes"})


# --- rows to act on, made through the services -----------------------------------------------------

def a_worker() -> Any:
    return make_worker()[0]


def a_dead_job() -> Job:
    job = make_jobs(1, provider=make_provider("maps"))[0]
    Job.objects.filter(pk=job.pk).update(state=JobState.DEAD, dead_reason="max_attempts")
    return job


def a_campaign(schedule: str = "") -> Campaign:
    return campaign_create(campaign=Campaign(name="Cafes", provider=make_provider("maps"), queries="coffee",
                                             cities="Riyadh", schedule=schedule), actor=SETUP)


def a_release(version: str) -> Release:
    return release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)),
                           filename=f"worker-{version}.tar.gz", actor="tests")


def stable_on(version: str) -> None:
    a_release(version)
    rollout_start(version=version, channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")


def a_rollout(*, paused: bool = False) -> Any:
    stable_on("1.0.0")
    a_release("1.1.0")
    rollout = rollout_start(version="1.1.0", channel_name="stable",
                            steps=[{"percent": 50}, {"percent": 100}], actor="tests")
    if paused:
        rollout_pause(channel_name="stable", actor="tests")
    return rollout


def an_alert() -> Alert:
    now = timezone.now()
    return Alert.objects.create(rule=AlertRule.objects.order_by("pk").first(), fingerprint=uuid.uuid4().hex[:16],
                                labels={"alertname": "heartbeat_missing", "worker": "w-1"}, state="firing",
                                active_since=now, starts_at=now, last_evaluated_at=now)


def a_receiver() -> Any:
    return receiver_set(name="ops mail", kind="email", addresses="ops@example.com")


def a_silence() -> Silence:
    return silence_create(matchers=[{"name": "provider", "op": "=", "value": "maps"}],
                          ends_at=timezone.now() + dt.timedelta(hours=2), created_by="ops", comment="work")


def a_task(*, success: bool) -> Task:
    now = timezone.now()
    return Task.objects.create(id=uuid.uuid4().hex, name=uuid.uuid4().hex, func="math.floor", args=(1.5,),
                               started=now, stopped=now, success=success)


def a_lead() -> Any:
    from ingestion.models import Lead

    lead_batch_ingest(rows=parse_lead_rows([lead()], max_leads=10), provider="maps", worker_id="w-1")
    return Lead.objects.get()


def dead_jobs_matching() -> Step:
    # As the list page sends it: the page's boxes ticked, then "select all matching".
    return _with(action("queueing.deadjob", "requeue_matching", [a_dead_job().pk]), select_across="1")


# --- every changelist action -------------------------------------------------------------------------

ACTIONS: dict[str, Callable[[], Step]] = {
    "workers_mgmt.worker:enable_workers": lambda: action("workers_mgmt.worker", "enable_workers",
                                                         [_disabled_worker().pk]),
    "workers_mgmt.worker:disable_workers": lambda: action("workers_mgmt.worker", "disable_workers",
                                                          [a_worker().pk]),
    "workers_mgmt.worker:rotate_secrets": lambda: action("workers_mgmt.worker", "rotate_secrets", [a_worker().pk]),
    "workers_mgmt.worker:issue_new_key": lambda: action("workers_mgmt.worker", "issue_new_key", [a_worker().pk]),
    "workers_mgmt.workercredential:issue_new_key": lambda: action(
        "workers_mgmt.workercredential", "issue_new_key",
        [WorkerCredential.objects.get(worker=a_worker()).pk]),
    "ingestion.suppressedphone:delete_selected": lambda: action(
        "ingestion.suppressedphone", "delete_selected",
        [suppression_add(phone="0550000001", reason="opt-out", actor=SETUP).pk]),
    "ingestion.lead:export_csv": lambda: action("ingestion.lead", "export_csv", [a_lead().pk]),
    "ingestion.lead:export_jsonl": lambda: action("ingestion.lead", "export_jsonl", [a_lead().pk]),
    "queueing.breaker:force_open": lambda: action(
        "queueing.breaker", "force_open", [Breaker.objects.create(scope="provider", key="maps").pk]),
    "queueing.breaker:force_close": lambda: action(
        "queueing.breaker", "force_close", [Breaker.objects.create(scope="provider", key="maps").pk]),
    "queueing.breaker:reset": lambda: action(
        "queueing.breaker", "reset", [Breaker.objects.create(scope="provider", key="maps").pk]),
    "queueing.campaign:enqueue": lambda: action("queueing.campaign", "enqueue", [a_campaign().pk]),
    "queueing.campaign:pause_schedule": lambda: action("queueing.campaign", "pause_schedule",
                                                       [a_campaign("every hour").pk]),
    "queueing.campaign:resume_schedule": lambda: action("queueing.campaign", "resume_schedule",
                                                        [_paused_campaign().pk]),
    "queueing.job:cancel": lambda: action("queueing.job", "cancel", [make_jobs(1)[0].pk]),
    "queueing.job:requeue": lambda: action("queueing.job", "requeue", [_cancelled_job().pk]),
    "queueing.deadjob:requeue": lambda: _with(action("queueing.deadjob", "requeue", [a_dead_job().pk]),
                                              apply="1", priority=""),
    "queueing.deadjob:requeue_matching": dead_jobs_matching,
    "queueing.deadjob:export_csv": lambda: action("queueing.deadjob", "export_csv", [a_dead_job().pk]),
    "queueing.deadjob:delete_selected": lambda: action("queueing.deadjob", "delete_selected", [a_dead_job().pk]),
    "queueing.provider:breaker_force_open": lambda: action("queueing.provider", "breaker_force_open",
                                                           [make_provider("maps").pk]),
    "queueing.provider:breaker_force_close": lambda: action("queueing.provider", "breaker_force_close",
                                                            [make_provider("maps").pk]),
    "queueing.provider:breaker_reset": lambda: action("queueing.provider", "breaker_reset",
                                                      [make_provider("maps").pk]),
    "releases_app.release:revoke": lambda: action("releases_app.release", "revoke", [a_release("2.0.0").pk]),
    "releases_app.channel:rollback": lambda: action("releases_app.channel", "rollback", [_channel_with_previous()]),
    "releases_app.channel:sign_again": lambda: action("releases_app.channel", "sign_again", [_channel()]),
    "releases_app.rollout:pause": lambda: action("releases_app.rollout", "pause", [a_rollout().pk]),
    "releases_app.rollout:resume": lambda: action("releases_app.rollout", "resume", [a_rollout(paused=True).pk]),
    "releases_app.rollout:promote": lambda: action("releases_app.rollout", "promote", [a_rollout().pk]),
    "releases_app.rollout:abort": lambda: action("releases_app.rollout", "abort", [a_rollout().pk]),
    "releases_app.rollout:rollback": lambda: action("releases_app.rollout", "rollback", [a_rollout().pk]),
    "releases_app.workerpin:delete_selected": lambda: action("releases_app.workerpin", "delete_selected",
                                                             [_pin().pk]),
    "alerts.alert:silence_selected": lambda: action("alerts.alert", "silence_selected", [an_alert().pk]),
    "alerts.receiver:send_test": lambda: action("alerts.receiver", "send_test", [a_receiver().pk]),
    "alerts.silence:expire_selected": lambda: action("alerts.silence", "expire_selected", [a_silence().pk]),
    "alerts.route:delete_selected": lambda: action(
        "alerts.route", "delete_selected", [Route.objects.create(name="all", receiver=a_receiver()).pk]),
    "auth.group:delete_selected": lambda: action("auth.group", "delete_selected",
                                                 [Group.objects.create(name="ops").pk]),
    "auth.user:delete_selected": lambda: action("auth.user", "delete_selected",
                                                [User.objects.create(username="leaver").pk]),
    "django_q.schedule:delete_selected": lambda: action("django_q.schedule", "delete_selected",
                                                        [Schedule.objects.create(func="math.floor").pk]),
    "django_q.success:delete_selected": lambda: action("django_q.success", "delete_selected",
                                                       [a_task(success=True).pk]),
    "django_q.success:resubmit_tasks": lambda: action("django_q.success", "resubmit_tasks",
                                                      [a_task(success=True).pk]),
    "django_q.failure:delete_selected": lambda: action("django_q.failure", "delete_selected",
                                                       [a_task(success=False).pk]),
    "django_q.failure:resubmit_tasks": lambda: action("django_q.failure", "resubmit_tasks",
                                                      [a_task(success=False).pk]),
    "django_q.ormq:delete_selected": lambda: action(
        "django_q.ormq", "delete_selected", [OrmQ.objects.create(key="leadops", payload="x").pk]),
}


def _with(step: Step, **data: Any) -> Step:
    step.data.update(data)
    return step


def _disabled_worker() -> Any:
    from workers_mgmt.models import Worker

    worker = a_worker()
    Worker.objects.filter(pk=worker.pk).update(enabled=False)
    return worker


def _paused_campaign() -> Campaign:
    from queueing.services import campaign_schedule_pause

    campaign = a_campaign("every hour")
    campaign_schedule_pause(campaign_ids=[campaign.pk], actor=SETUP)
    return campaign


def _cancelled_job() -> Job:
    job = make_jobs(1)[0]
    jobs_cancel(job_ids=[job.pk])
    return job


def _channel() -> int:
    stable_on("1.0.0")
    return Channel.objects.get(name="stable").pk


def _channel_with_previous() -> int:
    stable_on("1.0.0")
    stable_on("1.1.0")
    return Channel.objects.get(name="stable").pk


def _pin() -> Any:
    worker = a_worker()
    a_release("1.0.0")
    return worker_pin_set(worker=worker, version="1.0.0", actor="tests")


# --- every extra admin page that changes state -------------------------------------------------------

def _worker_page(name: str, *rest: str, **data: Any) -> Step:
    worker = a_worker()
    if rest:
        rest = (WorkerCredential.objects.get(worker=worker).key_id,)
    return Step(reverse(f"admin:workers_mgmt_worker_{name}", args=[worker.pk, *rest]), data)


def _rollout_start() -> Step:
    stable_on("1.0.0")
    release = a_release("1.2.0")
    return Step(reverse("admin:releases_app_rollout_start"), {"release": release.pk, "channel": "stable",
                                                               "steps": ""})


def _user_password() -> Step:
    user = User.objects.create(username="ops")
    return Step(reverse("admin:auth_user_password_change", args=[user.pk]),
                {"password1": "a long new passphrase 42", "password2": "a long new passphrase 42",
                 "usable_password": "true"})


VIEWS: dict[str, Callable[[], Step]] = {
    "workers_mgmt_worker_rotate": lambda: _worker_page("rotate", mode="push", grace_hours="1"),
    "workers_mgmt_worker_revoke": lambda: _worker_page("revoke", "key"),
    "workers_mgmt_worker_enroll": lambda: _worker_page("enroll"),
    "ingestion_lead_privacy_export": lambda: (a_lead(), Step(reverse("admin:ingestion_lead_privacy_export"),
                                                             {"phone": "0501234567", "format": "json"}))[1],
    "releases_app_release_upload": lambda: Step(reverse("admin:releases_app_release_upload"), {
        "version": "5.0.0", "artifact": SimpleUploadedFile("w.tar.gz", tar_artifact("5.0.0"))}),
    "releases_app_rollout_start": _rollout_start,
    "releases_app_rollout_operate": lambda: Step(reverse("admin:releases_app_rollout_operate",
                                                         args=[a_rollout().pk, "pause"])),
    "alerts_alert_silence": lambda: Step(reverse("admin:alerts_alert_silence", args=[an_alert().pk])),
    "alerts_alert_acknowledge": lambda: Step(reverse("admin:alerts_alert_acknowledge", args=[an_alert().pk])),
    "alerts_alert_silence_hour": lambda: Step(reverse("admin:alerts_alert_silence_hour", args=[an_alert().pk])),
    "alerts_receiver_test": lambda: Step(reverse("admin:alerts_receiver_test", args=[a_receiver().pk])),
    "alerts_silence_expire": lambda: Step(reverse("admin:alerts_silence_expire", args=[a_silence().pk])),
    "auth_user_password_change": _user_password,
}


# --- every admin that may delete: through its delete page ---------------------------------------------

def _delete_page(model: str, pk: Any) -> Step:
    app, model_name = model.split(".")
    return Step(reverse(f"admin:{app}_{model_name}_delete", args=[pk]), {"post": "yes"})


DELETES: dict[str, Callable[[], Step]] = {
    "ingestion.suppressedphone": lambda: _delete_page(
        "ingestion.suppressedphone", suppression_add(phone="0550000002", reason="opt-out", actor=SETUP).pk),
    "queueing.deadjob": lambda: _delete_page("queueing.deadjob", a_dead_job().pk),
    # Only a draft campaign or an unused provider may go; the delete itself is audited (admin.delete).
    "queueing.campaign": lambda: _delete_page("queueing.campaign", a_campaign().pk),
    "queueing.provider": lambda: _delete_page("queueing.provider", make_provider("unused").pk),
    "releases_app.workerpin": lambda: _delete_page("releases_app.workerpin", _pin().pk),
    "alerts.route": lambda: _delete_page("alerts.route", Route.objects.create(name="r", receiver=a_receiver()).pk),
    "auth.group": lambda: _delete_page("auth.group", Group.objects.create(name="ops").pk),
    "auth.user": lambda: _delete_page("auth.user", User.objects.create(username="leaver").pk),
    "django_q.schedule": lambda: _delete_page("django_q.schedule", Schedule.objects.create(func="math.floor").pk),
    "django_q.success": lambda: _delete_page("django_q.success", a_task(success=True).pk),
    "django_q.failure": lambda: _delete_page("django_q.failure", a_task(success=False).pk),
    "django_q.ormq": lambda: _delete_page("django_q.ormq", OrmQ.objects.create(key="leadops", payload="x").pk),
}


if not admin.site.is_registered(OrmQ):  # django-q2 lists its ORM queue only when Redis is not the broker
    del ACTIONS["django_q.ormq:delete_selected"], DELETES["django_q.ormq"]


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def run_once(admin_client: Any, make: Callable[[], Step]) -> list[StaffAction]:
    step = make()
    mark = StaffAction.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = admin_client.post(step.url, step.data)
    assert response.status_code < 400, (step.url, response.status_code, response.content[:500])
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    assert not LogEntry.objects.exists()
    return list(StaffAction.objects.filter(pk__gt=mark))


def test_the_scenarios_cover_the_live_admin_site(db):
    assert live_actions() - set(ACTIONS) == set(), "an admin action with no audited scenario"
    assert live_extra_views() - set(VIEWS) - READ_ONLY_VIEWS == set(), "an admin page with no audited scenario"
    # An admin not listed here cannot delete at all (its delete permission is refused).
    assert live_deleters() - set(DELETES) == set(), "an admin that deletes with no audited scenario"
    for label_ in ("workers_mgmt.worker", "ingestion.lead", "alerts.receiver"):
        assert label_ not in live_deleters()


@pytest.mark.parametrize("key", sorted(ACTIONS))
def test_every_admin_action_leaves_exactly_one_staff_action(admin_client, key):
    rows = run_once(admin_client, ACTIONS[key])
    assert len(rows) == 1, (key, [str(row) for row in rows])
    assert rows[0].actor_name == "admin" and rows[0].source == "admin"


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_every_admin_page_that_changes_state_leaves_exactly_one_staff_action(admin_client, name):
    rows = run_once(admin_client, VIEWS[name])
    assert len(rows) == 1, (name, [str(row) for row in rows])
    assert rows[0].actor_name == "admin"


@pytest.mark.parametrize("model", sorted(DELETES))
def test_every_admin_delete_leaves_exactly_one_staff_action(admin_client, model):
    rows = run_once(admin_client, DELETES[model])
    assert len(rows) == 1, (model, [str(row) for row in rows])


@pytest.mark.parametrize(("model", "make"), [
    ("auth.group", lambda: {"name": "support"}),
    ("django_q.schedule", lambda: {"name": "nightly", "func": "math.floor", "schedule_type": "D", "repeats": "-1",
                                   "cluster": "", "next_run_0": "2030-01-01", "next_run_1": "00:00:00"}),
])
def test_an_add_through_a_library_admin_form_is_audited(admin_client, model, make):
    app, model_name = model.split(".")
    mark = StaffAction.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = admin_client.post(reverse(f"admin:{app}_{model_name}_add"), make())
    assert response.status_code == 302, response.content.decode()[:3000]
    (row,) = StaffAction.objects.filter(pk__gt=mark)
    assert (row.action, row.object_type, row.actor_name) == ("admin.add", model, "admin")
    assert not LogEntry.objects.exists()


def test_an_objects_history_link_opens_its_staff_actions(admin_client, db):
    worker = a_worker()
    response = admin_client.get(reverse("admin:workers_mgmt_worker_history", args=[worker.pk]))
    assert response.status_code == 302
    page = admin_client.get(response.url)
    assert page.status_code == 200 and "object_type__exact=workers_mgmt.worker" in response.url
