"""Signing keys, rotation overlap, manifest refresh before expiry, and the operator commands."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from leadops.schedules import PERIODIC_TASKS
from releases_app.models import Channel, ReleaseAuditEvent, Rollout, RolloutState
from releases_app.services import channel_manifest_sign, manifests_refresh
from releases_app.signing import canonical_json, signing_keys


def test_canonical_json_is_sorted_compact_ascii():
    assert canonical_json({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == b'{"a":{"c":[1,2],"d":"\\u00e9"},"b":1}'


def test_signing_public_key_prints_key_id_and_raw_public_key(capsys):
    call_command("signing_public_key", "--json")
    answer = json.loads(capsys.readouterr().out)
    raw = base64.b64decode(answer["public_key"])
    assert len(raw) == 32
    assert answer["key_id"] == hashlib.sha256(raw).hexdigest()[:16] == signing_keys()[0].key_id
    call_command("signing_public_key")
    assert capsys.readouterr().out.split() == [answer["key_id"], answer["public_key"]]


def test_two_configured_keys_both_sign_during_a_rotation(db, settings):
    old, new = os.urandom(32), os.urandom(32)
    settings.LEADOPS_SIGNING_KEY = ",".join(base64.urlsafe_b64encode(seed).decode() for seed in (old, new))
    manifest = channel_manifest_sign(channel_name="stable", actor="tests").manifest
    assert len(manifest["signatures"]) == 2
    for seed, entry in zip((old, new), manifest["signatures"], strict=True):
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        assert entry["keyid"] == hashlib.sha256(raw).hexdigest()[:16]
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(entry["sig"]),
                                                       canonical_json(manifest["signed"]))


def test_manifests_are_signed_again_past_half_their_life(clock, db):
    first = channel_manifest_sign(channel_name="stable", actor="tests")
    assert manifests_refresh() == []
    clock.shift(dt.timedelta(hours=first.manifest_ttl_hours / 2 + 1))
    assert "stable" in manifests_refresh()
    channel = Channel.objects.get(name="stable")
    assert channel.sequence == first.sequence + 1
    assert channel.manifest_expires_at > timezone.now() + dt.timedelta(hours=first.manifest_ttl_hours - 1)


def test_release_schedules_are_registered():
    funcs = {func for _name, func, _minutes in PERIODIC_TASKS}
    assert {"releases_app.tasks.evaluate_rollouts", "releases_app.tasks.refresh_manifests"} <= funcs


def test_pause_resume_abort_commands_are_audited(db, fleet, stable_on, publish):
    stable_on("1.0.0")
    fleet(3)
    publish("1.1.0")
    out = io.StringIO()
    call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", "--canary", "w-01", "--json",
                 stdout=out)
    started = json.loads(out.getvalue())
    assert (started["state"], started["step"], started["targets"]) == ("running", 0, 1)
    call_command("rollout_pause", "--channel", "stable", "--reason", "looking", stdout=io.StringIO())
    assert Rollout.objects.get(pk=started["rollout_id"]).state == RolloutState.PAUSED
    call_command("rollout_resume", "--channel", "stable", stdout=io.StringIO())
    out = io.StringIO()
    call_command("rollout_abort", "--channel", "stable", "--json", stdout=out)
    answer = json.loads(out.getvalue())
    assert (answer["state"], answer["current"], answer["previous"]) == ("aborted", "1.0.0", None)
    actions = set(ReleaseAuditEvent.objects.filter(rollout_id_ref=started["rollout_id"])
                  .values_list("action", flat=True))
    assert {"rollout_started", "rollout_paused", "rollout_resumed", "rollout_aborted"} <= actions
    paused = ReleaseAuditEvent.objects.filter(action="rollout_paused").get()
    assert paused.actor == "command:rollout_pause"
    assert (paused.staff_action.action, paused.staff_action.actor_name) == ("rollout.pause", "command:rollout_pause")


@pytest.mark.parametrize("argv, message", [
    (["rollout_start", "--version", "9.9.9", "--channel", "stable"], "no release 9.9.9"),
    (["rollout_start", "--version", "1.0.0", "--channel", "stable", "--canary", "ghost"], "unknown canary"),
    (["rollout_start", "--version", "1.0.0", "--channel", "stable", "--steps", "[{]"], "not valid JSON"),
    (["rollout_start", "--version", "1.0.0", "--channel", "stable", "--steps", '[{"percent": 101}]'],
     "between 0 and 100"),
    (["rollout_promote", "--channel", "stable"], "no rollout in progress"),
    (["rollout_rollback", "--channel", "beta"], "no previous release"),
    (["rollout_rollback", "--channel", "nope"], "no channel"),
])
def test_commands_exit_with_one_line_errors(db, publish, argv, message):
    publish("1.0.0")
    with pytest.raises(CommandError, match=message):
        call_command(*argv, stdout=io.StringIO())


def test_rollback_after_a_finished_rollout_goes_to_previous(db, fleet, stable_on, publish):
    stable_on("1.0.0")
    publish("1.1.0")
    call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", "--steps", '[{"percent": 100}]',
                 stdout=io.StringIO())
    call_command("rollout_promote", "--channel", "stable", stdout=io.StringIO())
    assert Channel.objects.get(name="stable").current.version == "1.1.0"
    out = io.StringIO()
    call_command("rollout_rollback", "--channel", "stable", "--json", stdout=out)
    assert json.loads(out.getvalue())["current"] == "1.0.0"
    assert Rollout.objects.get(release__version="1.1.0").state == RolloutState.ROLLED_BACK


def test_rollout_events_are_published_on_commit(db, fleet, stable_on, publish, django_capture_on_commit_callbacks):
    from core import events

    seen = []
    events.sink_register(seen.append)
    try:
        stable_on("1.0.0")
        publish("1.1.0")
        with django_capture_on_commit_callbacks(execute=True):
            call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", stdout=io.StringIO())
    finally:
        events.sink_unregister(seen.append)
    started = [e for e in seen if e["type"] == "rollout.changed" and e["data"]["to_state"] == "running"]
    assert started and started[-1]["data"]["version"] == "1.1.0"


def test_audit_rows_cannot_be_changed_or_deleted(db):
    channel_manifest_sign(channel_name="stable", actor="tests")
    row = ReleaseAuditEvent.objects.first()
    row.actor = "someone else"
    with pytest.raises(ValueError):
        row.save()
    with pytest.raises(ValueError):
        row.delete()


@pytest.mark.postgres
def test_database_refuses_changes_to_audit_rows(db):
    from django.db import DatabaseError, transaction

    channel_manifest_sign(channel_name="stable", actor="tests")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReleaseAuditEvent.objects.update(actor="someone else")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ReleaseAuditEvent.objects.all().delete()
