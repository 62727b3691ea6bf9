"""Acceptance: ten simulated workers through canary -> 50% -> rollback (runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core.management import call_command

from releases_app.models import Channel, ReleaseAuditEvent, Rollout, RolloutState
from releases_app.signing import canonical_json, signing_keys


def _updated(fleet) -> set[str]:
    return {member.worker_id for member in fleet if member.version == "1.1.0"}


def test_canary_then_half_then_rollback_with_ten_workers(db, fleet, stable_on, publish):
    stable_on("1.0.0")
    workers = fleet(10)
    for member in workers:
        assert member.check() == {**member.check(), "target": None, "reason": "current"}
    publish("1.1.0")

    call_command("rollout_start", "--version", "1.1.0", "--channel", "stable", "--canary", "w-03,w-07",
                 "--steps", json.dumps([{"canary": ["w-03", "w-07"], "hold_s": 1800},
                                        {"percent": 50, "hold_s": 1800}, {"percent": 100}]),
                 stdout=io.StringIO())
    answers = {member.worker_id: member.update() for member in workers}
    # Only the two canaries update; everyone else is told to stay where they are.
    assert _updated(workers) == {"w-03", "w-07"}
    assert {answers["w-03"]["reason"], answers["w-07"]["reason"]} == {"canary"}
    assert {a["reason"] for w, a in answers.items() if w not in ("w-03", "w-07")} == {"current"}

    call_command("rollout_promote", "--channel", "stable", stdout=io.StringIO())
    answers = {member.worker_id: member.update() for member in workers}
    half = _updated(workers)
    assert len(half) == 5 and {"w-03", "w-07"} <= half
    # Deterministic: the canaries plus the three lowest SHA-256(salt + worker id) of the rest.
    salt = Rollout.objects.get(release__version="1.1.0").salt
    others = sorted((m.worker_id for m in workers if m.worker_id not in ("w-03", "w-07")),
                    key=lambda name: hashlib.sha256(f"{salt}{name}".encode()).hexdigest())
    assert half == {"w-03", "w-07", *others[:3]}
    assert {answers[name]["reason"] for name in half - {"w-03", "w-07"}} == {"cohort"}
    # Asking again changes nothing: the same half, nobody else.
    for member in workers:
        member.update()
    assert _updated(workers) == half

    sequence_before = Channel.objects.get(name="stable").sequence
    call_command("rollout_rollback", "--channel", "stable", stdout=io.StringIO())
    answers = {member.worker_id: member.update() for member in workers}
    assert {member.version for member in workers} == {"1.0.0"}
    assert {answers[name]["reason"] for name in half} == {"channel"}
    assert {answers[name]["target"]["version"] for name in half} == {"1.0.0"}
    channel = Channel.objects.get(name="stable")
    assert channel.current.version == "1.0.0"
    assert channel.sequence > sequence_before
    assert channel.manifest["signed"]["release"]["version"] == "1.0.0"
    assert Rollout.objects.get(release__version="1.1.0").state == RolloutState.ROLLED_BACK
    assert ReleaseAuditEvent.objects.filter(action="rolled_back", version="1.1.0").exists()


def test_manifest_in_update_check_is_signed_over_canonical_json(db, fleet, stable_on):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stable_on("1.0.0")
    (member,) = fleet(1, version="0.9.0")
    answer = member.check()
    assert answer["reason"] == "channel"
    assert answer["target"]["version"] == "1.0.0"
    manifest = answer["manifest"]
    key = signing_keys()[0]
    (signature,) = manifest["signatures"]
    assert signature["keyid"] == key.key_id == hashlib.sha256(key.public_raw).hexdigest()[:16]
    Ed25519PublicKey.from_public_bytes(key.public_raw).verify(
        base64.b64decode(signature["sig"]), canonical_json(manifest["signed"]))
    signed = manifest["signed"]
    assert signed["release"]["sha256"] == answer["target"]["sha256"]
    assert set(signed) >= {"schema", "channel", "sequence", "issued_at", "expires_at", "release", "previous",
                           "rollout"}


@pytest.mark.postgres
def test_concurrent_promotes_move_the_rollout_one_step_each(transactional_db, fleet, stable_on, publish):
    """Two operators promoting at once: the channel row lock serializes them; no step is skipped twice."""
    import threading

    from releases_app.services import ReleaseRefused, rollout_promote, rollout_start
    from tests.threads import run_in_threads

    stable_on("1.0.0")
    fleet(4)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                  steps=[{"canary": ["w-01"]}, {"percent": 50}, {"percent": 75}, {"percent": 100}], actor="t")
    barrier = threading.Barrier(2)
    outcomes = []

    def promote():
        barrier.wait()
        try:
            outcomes.append(rollout_promote(channel_name="stable", actor="t").step_index)
        except ReleaseRefused as exc:
            outcomes.append(str(exc))

    run_in_threads(promote, [(), ()], timeout=None)
    assert sorted(outcomes) == [1, 2]
    rollout = Rollout.objects.get(release__version="1.1.0")
    assert rollout.step_index == 2
    assert rollout.targets.count() == 3
