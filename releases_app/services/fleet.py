"""Per-worker release state: pins, and the stages workers report while they update."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import Actor, actor_label, staff_change
from releases_app.models import (
    Channel,
    Release,
    ReleaseAuditAction,
    ReleaseState,
    UpdateStage,
    WorkerPin,
    WorkerReleaseStatus,
)
from releases_app.services.base import ReleaseRefused, release_audit
from releases_app.services.manifests import channel_get_or_create, channel_locked, manifest_sign
from workers_mgmt.models import Worker

WORKER_PIN_TYPE = "releases_app.workerpin"


def worker_pin_set(*, worker: Worker, version: str, reason: str = "", expires_at: dt.datetime | None = None,
                   actor: Actor | str) -> WorkerPin:
    release = Release.objects.filter(version=version, state=ReleaseState.READY).first()
    if release is None:
        raise ReleaseRefused(f"no ready release {version}")
    with staff_change(actor=actor, action="release.pin_set", object_type=WORKER_PIN_TYPE,
                      object_ids=[worker.pk], detail={"version": version}):
        actor = actor_label(actor)
        channel_get_or_create(name=worker.channel, actor=actor)
        channel = channel_locked(worker.channel)
        pin, _ = WorkerPin.objects.update_or_create(
            worker=worker, defaults={"release": release, "reason": reason[:200], "expires_at": expires_at,
                                     "created_by": actor[:150]})
        release_audit(action=ReleaseAuditAction.PIN_SET, actor=actor, channel=channel.name, version=version,
                      detail={"worker_id": worker.pk, "reason": reason}, to_state="pinned")
        manifest_sign(channel=channel, actor=actor, reason="pin set")
    return pin


def worker_pin_clear(*, worker: Worker, actor: Actor | str) -> bool:
    with staff_change(actor=actor, action="release.pin_clear", object_type=WORKER_PIN_TYPE,
                      object_ids=[worker.pk]):
        actor = actor_label(actor)
        channel = Channel.objects.select_for_update().filter(name=worker.channel).first()
        pin = WorkerPin.objects.select_related("release").filter(worker=worker).first()
        if pin is None:
            return False
        version = pin.release.version
        pin.delete()
        release_audit(action=ReleaseAuditAction.PIN_CLEARED, actor=actor, channel=worker.channel,
                      version=version, detail={"worker_id": worker.pk}, to_state="unpinned")
        if channel is not None:
            manifest_sign(channel=channel, actor=actor, reason="pin cleared")
    return True


def update_report_record(*, worker: Worker, version: str, stage: str, ok: bool,
                         details: dict[str, Any] | None) -> WorkerReleaseStatus:
    """Keep the latest of each stage one worker reported for one version (one row per pair)."""
    now = timezone.now()
    changes: dict[str, Any] = {"last_stage": stage, "last_ok": ok, "last_details": details or {},
                               "updated_at": now}
    # A new download starts a new attempt, and a new install a new self-test: what the previous
    # attempt said about the later stages no longer describes this worker (a self-test that failed
    # before the worker was fixed must not fail the next rollout of the same version).
    if stage == UpdateStage.DOWNLOADED:
        changes.update(downloaded_at=now, installed_at=None, install_ok=None, self_test_ok=None,
                       rolled_back_at=None)
    elif stage == UpdateStage.INSTALLED:
        changes.update(installed_at=now, install_ok=ok, self_test_ok=None, rolled_back_at=None)
    elif stage == UpdateStage.SELF_TEST:
        changes["self_test_ok"] = ok
    elif stage == UpdateStage.ROLLED_BACK:
        changes["rolled_back_at"] = now
    with transaction.atomic():
        status, _ = WorkerReleaseStatus.objects.select_for_update().update_or_create(
            worker_id=worker.pk, version=version, defaults=changes)
    return status
