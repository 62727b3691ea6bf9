"""Releases: publish an artifact through the storage API, self-test it, revoke it."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.audit import Actor, actor_label, staff_change
from releases_app.artifacts import artifact_self_test
from releases_app.models import (
    Channel,
    Release,
    ReleaseAuditAction,
    ReleaseState,
    Rollout,
    WorkerPin,
    version_validator,
)
from releases_app.services.base import ReleaseRefused, release_audit

RELEASE_TYPE = "releases_app.release"

def _artifact_storage_name(version: str, filename: str) -> str:
    base = os.path.basename(filename.replace("\\", "/")) or "artifact"
    suffix = ".zip" if base.lower().endswith(".zip") else ".tar.gz"
    return f"releases/{version}/worker-{version}{suffix}"


def release_publish(
    *, version: str, fileobj: IO[bytes], filename: str, notes: str = "", min_agent_version: str = "",
    actor: Actor | str,
) -> Release:
    """Store an artifact through the storage API, record its size and SHA-256, and self-test it."""
    try:
        version_validator(version)
    except ValidationError as exc:
        raise ReleaseRefused(f"invalid version {version[:70]!r}: {exc.messages[0]}") from None
    if min_agent_version:
        try:
            version_validator(min_agent_version)
        except ValidationError:
            raise ReleaseRefused("invalid minimum agent version") from None
    limit = settings.LEADOPS_MAX_RELEASE_BYTES
    # Hash and measure once, into a temporary copy, so the bytes hashed are the bytes stored, and an
    # oversized upload is refused before anything reaches the storage.
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as spool:
        while chunk := fileobj.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise ReleaseRefused(f"artifact is larger than LEADOPS_MAX_RELEASE_BYTES ({limit} bytes)")
            digest.update(chunk)
            spool.write(chunk)
        if size == 0:
            raise ReleaseRefused("artifact is empty")
        spool.seek(0)
        if Release.objects.filter(version=version).exists():
            raise ReleaseRefused(f"version {version} already exists")
        name = _artifact_storage_name(version, filename)
        # Never delete or overwrite: when the name is taken (a crashed earlier upload, a concurrent
        # one), the storage picks a free name and the release records whichever it got.
        stored_name = default_storage.save(name, File(spool, name=name))
    # The upload and its self-test are one staff change: one transaction, one StaffAction row.
    with staff_change(actor=actor, action="release.upload", object_type=RELEASE_TYPE,
                      object_ids=[version], detail={"size": size}):
        actor = actor_label(actor)
        try:
            with transaction.atomic():
                release = Release.objects.create(
                    version=version, artifact_name=stored_name, sha256=digest.hexdigest(), size=size,
                    notes=notes, min_agent_version=min_agent_version, created_by=actor[:150],
                    state=ReleaseState.UPLOADED,
                )
                release_audit(action=ReleaseAuditAction.RELEASE_UPLOADED, actor=actor, version=version,
                              detail={"sha256": release.sha256, "size": size}, to_state=ReleaseState.UPLOADED)
        except IntegrityError:
            raise ReleaseRefused(f"version {version} already exists") from None
        return release_self_test(release=release, actor=actor)


def release_self_test(*, release: Release, actor: str) -> Release:
    """uploaded -> self_testing -> ready or failed, with the report kept on the release."""
    moved = Release.objects.filter(pk=release.pk, state=ReleaseState.UPLOADED).update(
        state=ReleaseState.SELF_TESTING, updated_at=timezone.now())
    if not moved:
        raise ReleaseRefused(f"release {release.version} is not waiting for its self-test")
    try:
        with default_storage.open(release.artifact_name, "rb") as stored:
            # Read the stored copy, not the upload: what workers will download is what is tested.
            digest = hashlib.sha256()
            while chunk := stored.read(1024 * 1024):
                digest.update(chunk)
            stored.seek(0)
            report = artifact_self_test(fileobj=stored, expected_version=release.version,
                                        max_unpacked_bytes=settings.LEADOPS_MAX_RELEASE_UNPACKED_BYTES)
        if digest.hexdigest() != release.sha256:
            report.fail("stored artifact does not match the uploaded SHA-256")
    except OSError as exc:
        from releases_app.artifacts import SelfTestReport

        report = SelfTestReport()
        report.fail(f"artifact unreadable from storage: {type(exc).__name__}")
    state = ReleaseState.READY if report.ok else ReleaseState.FAILED
    manifest = report.manifest
    with transaction.atomic():
        Release.objects.filter(pk=release.pk, state=ReleaseState.SELF_TESTING).update(
            state=state, self_test_report=report.as_dict(), archive_format=report.format,
            entrypoint=manifest.get("entrypoint", "")[:255], node_version=manifest.get("node", "")[:40],
            chromium_version=manifest.get("chromium", "")[:40], updated_at=timezone.now(),
        )
        release_audit(action=ReleaseAuditAction.RELEASE_SELF_TESTED, actor=actor, version=release.version,
                      detail={"ok": report.ok, "errors": report.errors}, from_state=ReleaseState.SELF_TESTING,
                      to_state=state)
    release.refresh_from_db()
    return release


def release_revoke(*, release: Release, actor: Actor | str) -> Release:
    """ready -> revoked; refused while a channel, an active rollout or a pin still hands it out."""
    with staff_change(actor=actor, action="release.revoke", object_type=RELEASE_TYPE,
                      object_ids=[release.version]):
        actor = actor_label(actor)
        in_use = (
            Channel.objects.select_for_update().filter(current=release).exists()
            or Channel.objects.filter(previous=release).exists()
            or Rollout.objects.active().filter(release=release).exists()
            or WorkerPin.objects.filter(release=release).exists()
        )
        if in_use:
            raise ReleaseRefused(f"release {release.version} is still in use by a channel, rollout or pin")
        before = release.state
        moved = Release.objects.filter(pk=release.pk).exclude(state=ReleaseState.REVOKED).update(
            state=ReleaseState.REVOKED, updated_at=timezone.now())
        if moved:
            release_audit(action=ReleaseAuditAction.RELEASE_REVOKED, actor=actor, version=release.version,
                          from_state=before, to_state=ReleaseState.REVOKED)
    release.refresh_from_db()
    return release
