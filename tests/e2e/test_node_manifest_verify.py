"""Node 20 verifies the portal's manifests with nothing but node:crypto, and refuses the bad ones."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from releases_app.services import channel_manifest_sign
from releases_app.signing import sign_envelope, signing_keys
from tests.node import require_node

SCRIPT = Path(__file__).with_name("node_verify_manifest.mjs")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def node() -> str:
    return require_node()


def run_node(manifest: dict, tmp_path: Path, *args: str, trust: list[str] | None = None) -> tuple[int, dict]:
    path = tmp_path / f"manifest-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(manifest))
    if trust is None:
        key = signing_keys()[0]
        trust = [f"{key.key_id}:{key.public_b64}"]
    argv = [require_node(), str(SCRIPT), "--manifest", str(path)]
    for entry in trust:
        argv += ["--trust", entry]
    done = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def manifest(db, publish):
    from releases_app.services import rollout_promote, rollout_start

    publish("1.0.0")
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    return channel_manifest_sign(channel_name="stable", actor="tests").manifest


@pytest.fixture
def publish(db, settings, tmp_path):
    import io

    from releases_app.services import release_publish
    from tests.releases_app.builders import tar_artifact

    settings.MEDIA_ROOT = str(tmp_path / "media")
    return lambda version: release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)),
                                           filename="w.tar.gz", actor="tests")


def test_node_accepts_a_manifest_the_portal_signed(manifest, tmp_path):
    code, answer = run_node(manifest, tmp_path, "--channel", "stable")
    assert code == 0, answer
    assert answer == {"ok": True, "sequence": manifest["signed"]["sequence"], "version": "1.0.0"}


def test_node_refuses_a_tampered_manifest(manifest, tmp_path):
    tampered = copy.deepcopy(manifest)
    tampered["signed"]["release"]["sha256"] = "0" * 64
    assert run_node(tampered, tmp_path) == (1, {"ok": False, "code": "manifest_bad_signature"})


def test_node_refuses_an_unknown_key(manifest, tmp_path):
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    trust = [f"0123456789abcdef:{base64.b64encode(raw).decode()}"]
    assert run_node(manifest, tmp_path, trust=trust) == (1, {"ok": False, "code": "manifest_unknown_key"})


def test_node_refuses_a_foreign_signature_under_a_trusted_key_id(manifest, tmp_path):
    forged = copy.deepcopy(manifest)
    other = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    from releases_app.signing import canonical_json

    forged["signatures"][0]["sig"] = base64.b64encode(other.sign(canonical_json(forged["signed"]))).decode()
    assert run_node(forged, tmp_path) == (1, {"ok": False, "code": "manifest_bad_signature"})


def test_node_refuses_a_lower_sequence(manifest, tmp_path):
    higher = str(manifest["signed"]["sequence"] + 1)
    assert run_node(manifest, tmp_path, "--min-sequence", higher) == (1, {"ok": False, "code": "manifest_rollback"})


def test_node_refuses_an_expired_manifest(manifest, tmp_path):
    expired = sign_envelope({**manifest["signed"], "expires_at": "2000-01-01T00:00:00Z"})
    assert run_node(expired, tmp_path) == (1, {"ok": False, "code": "manifest_expired"})
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run_node(manifest, tmp_path, "--now", later) == (1, {"ok": False, "code": "manifest_expired"})


def test_node_canonical_json_matches_python_for_non_ascii(db, tmp_path):
    signed = {"schema": 1, "channel": "stable", "sequence": 3, "expires_at": "2999-01-01T00:00:00Z",
              "release": {"version": "1.0.0", "notes": "مرحبا é \u2028"}, "z": [1, {"b": 2, "a": None}]}
    code, answer = run_node(sign_envelope(signed), tmp_path)
    assert code == 0, answer


def test_the_script_runs_the_snippet_the_docs_show():
    """The script imports docs/RELEASES.md's own snippet (so every test above runs the documented code),
    and the snippet needs nothing but node:crypto."""
    docs = (ROOT / "docs" / "RELEASES.md").read_text()
    blocks = [block for block in re.findall(r"```js\n(.*?)\n```", docs, re.S)
              if "export function verifyManifest" in block]
    assert len(blocks) == 1
    assert re.findall(r'^import .* from "([^"]+)";$', blocks[0], re.M) == ["node:crypto"]
    assert 'new URL("../../docs/RELEASES.md", import.meta.url)' in SCRIPT.read_text()
