"""`evidence_capture` on a ready installation: the seed's pack per gate, dated, indexed, with the
manifests as served and no secret, phone number or signing key anywhere (docs/PRODUCTION_READINESS.md)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from core.logging import mask_pii
from queueing.models import Job, JobState
from releases_app.signing import envelope_verify
from tests.leadops.readiness_install import ready_installation

pytestmark = pytest.mark.django_db

FULL_PHONE = re.compile(r"(?:\+?966|0)5\d{8}")
# Digests, signatures and keys: runs of 32 or more hex or base64 characters. Ten digits that start
# with 05 turn up inside one now and then (a pack's release digest did, on CI); that is no phone.
LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")


def _full_phone(text: str) -> re.Match[str] | None:
    return FULL_PHONE.search(LONG_TOKEN.sub(" ", text))


@pytest.fixture(autouse=True)
def _no_chromium_and_media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LEADOPS_CHROMIUM = str(tmp_path / "no-chromium-here")


@pytest.fixture
def pack(client, tmp_path, http_receiver, capsys):
    worker, secrets_seen = ready_installation(client, tmp_path, http_receiver.url("/hook"))
    # A dead job whose error names a phone: the pack counts it, and must not repeat the number.
    job = Job.objects.filter(provider__name="maps").first()
    Job.objects.filter(pk=job.pk).update(state=JobState.DEAD, dead_reason="non_retryable_error",
                                         finished_at=timezone.now(),
                                         last_error={"code": "blocked", "message": "owner 0501234567 refused"})
    out = tmp_path / "evidence"
    call_command("evidence_capture", "--out", str(out))
    assert "Evidence pack written" in capsys.readouterr().out
    root = out / timezone.localdate().isoformat()
    return root, worker, secrets_seen


def test_pack_has_every_step_and_an_index_linking_every_file(pack):
    root, _, _ = pack
    index = (root / "index.md").read_text()
    for step in ("secrets", "updates", "breakers_dlq", "alerts", "privacy", "throttling"):
        assert f"## {step}" in index and (root / step).is_dir()
    files = [path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()]
    assert len(files) > 8
    for name in files:
        if name != "index.md":
            assert f"]({name})" in index, name
    assert "Screenshots skipped: no executable Chromium" in index


def test_latest_manifest_is_as_served_and_verifies_with_the_public_signing_key(pack, capsys):
    root, worker, _ = pack
    saved = (root / "updates" / "latest-stable.json").read_bytes()
    served = worker.request("GET", "/api/v1/releases/stable/latest.json")
    assert served.status_code == 200 and served.content == saved
    call_command("signing_public_key", "--json")
    public = json.loads(capsys.readouterr().out)
    trusted = {public["key_id"]: base64.b64decode(public["public_key"])}
    manifest = json.loads(saved)
    assert envelope_verify(manifest, trusted)
    assert manifest["signed"]["release"]["version"] == "1.0.0"
    history = json.loads((root / "updates" / "rollout-history.json").read_text())
    assert history["rollouts"][0]["steps"][0]["canary"] == ["pilot-1"]


def test_secrets_step_holds_the_rotation(pack):
    root, worker, _ = pack
    rows = [json.loads(line) for line in (root / "secrets" / "credential-audit.jsonl").read_text().splitlines()]
    started = [r for r in rows if r["worker_id"] == "pilot-1" and r["kind"] == "created"
               and r["reason"] == "rotation:push"]
    # The pack goes through the log masking once more: a key id whose hex holds a phone-like digit
    # run is written masked, the same way every time (about one random key id in ten).
    key_id = mask_pii(worker.key_id)
    assert [r["key_id"] for r in started] == [key_id]
    assert any(r["kind"] == "promoted" and r["key_id"] == key_id for r in rows)


def test_no_secret_phone_or_signing_key_anywhere_in_the_pack(pack, settings, http_receiver):
    root, _, secrets_seen = pack
    forbidden = [*secrets_seen, settings.SECRET_KEY, http_receiver.url("/hook"),
                 *[part.strip() for part in settings.LEADOPS_SIGNING_KEY.split(",") if part.strip()],
                 *[part.strip() for part in str(settings.LEADOPS_SECRETS_KEY).split(",") if part.strip()]]
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for secret in forbidden:
            assert secret not in text, path
        assert not _full_phone(text), (path, _full_phone(text))
    dlq = json.loads(next((root / "breakers_dlq").glob("capture-*.json")).read_text())
    assert {"provider": "maps", "reason": "non_retryable_error", "error": "blocked", "count": 1} \
        in dlq["dlq_by_provider_and_error"]


def test_two_captures_give_before_and_after(clock, tmp_path):
    # The clock stands at the start of a minute: five seconds later is the same day.
    out = tmp_path / "evidence"
    call_command("evidence_capture", "--out", str(out), "--step", "breakers_dlq")
    clock.shift(5)
    call_command("evidence_capture", "--out", str(out), "--step", "breakers_dlq")
    root = out / timezone.localdate().isoformat()
    captures = sorted((root / "breakers_dlq").glob("capture-*.json"))
    assert len(captures) == 2
    assert [path.name for path in root.iterdir() if path.is_dir()] == ["breakers_dlq"]
    assert all("captured_at" in json.loads(path.read_text()) for path in captures)


def test_unknown_step_is_one_line_error(tmp_path):
    with pytest.raises(CommandError, match="Unknown step 'nope'"):
        call_command("evidence_capture", "--out", str(tmp_path), "--step", "nope")
