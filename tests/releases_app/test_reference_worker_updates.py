"""The reference worker against a live portal: it installs only what the portal signed, resumes
interrupted downloads with Range, and refuses tampered, foreign, replayed and expired manifests."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.utils import timezone

from releases_app.models import Channel, Release, WorkerReleaseStatus
from releases_app.services import channel_manifest_sign
from releases_app.signing import signing_keys
from tests.factories import make_worker
from tests.releases_app.builders import tar_artifact
from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.updater import ManifestVerifier, Updater, UpdateRefused, trusted_keys_from


class _CutStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int) -> None:
        self.inner, self.limit = inner, limit

    def __iter__(self):
        sent = 0
        for chunk in self.inner:
            take = chunk[: self.limit - sent]
            if take:
                sent += len(take)
                yield take
            if sent >= self.limit:
                raise httpx.ReadError("connection cut in the middle of the artifact")

    def close(self) -> None:
        self.inner.close()


class CuttingTransport(httpx.BaseTransport):
    """A real HTTP transport that drops the first download after `cut_after` bytes."""

    def __init__(self, cut_after: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.cut_after = cut_after
        self.download_ranges: list[str | None] = []
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/download"):
            self.download_ranges.append(request.headers.get("Range"))
            if self.cut_after is not None and len(self.download_ranges) == 1:
                return httpx.Response(response.status_code, headers=response.headers, request=request,
                                      stream=_CutStream(response.stream, self.cut_after))
        return response

    def close(self) -> None:
        self.inner.close()


def _trusted() -> dict[str, bytes]:
    key = signing_keys()[0]
    return trusted_keys_from({key.key_id: key.public_b64})


@pytest.fixture
def portal(live_server, transactional_db, publish, settings):
    """A live portal with stable on 1.0.0 and a worker on channel stable; yields a client factory."""
    from releases_app.services import rollout_promote, rollout_start

    publish("1.0.0", tar_artifact("1.0.0", padding=300_000))
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    _, issued = make_worker(worker_id="w-live")
    clients = []

    def client(transport: httpx.BaseTransport | None = None) -> LeadOpsClient:
        made = LeadOpsClient(live_server.url, issued.worker_id, issued.key_id, issued.secret,
                             transport=transport, retry=RetryPolicy(max_attempts=2, backoff_base_s=0.01))
        clients.append(made)
        return made

    yield client
    for made in clients:
        made.close()


def _updater(client, tmp_path: Path, **kwargs) -> Updater:
    kwargs.setdefault("trusted_keys", _trusted())
    return Updater(client, root=tmp_path / "worker", current_version="0.9.0", **kwargs)


def test_interrupted_download_resumes_with_range_and_installs(portal, tmp_path):
    transport = CuttingTransport(cut_after=100_000)
    updater = _updater(portal(transport), tmp_path)
    outcome = updater.check_once()
    assert (outcome.action, outcome.version) == ("installed", "1.0.0")
    assert transport.download_ranges == [None, "bytes=100000-"]
    installed = tmp_path / "worker" / "versions" / "1.0.0"
    assert (installed / "bin" / "worker.js").is_file()
    state = json.loads((tmp_path / "worker" / "state.json").read_text())
    release = Release.objects.get(version="1.0.0")
    assert state == {"current": "1.0.0", "last_good": "0.9.0", "unpacked": {"1.0.0": release.sha256}}
    status = WorkerReleaseStatus.objects.get(worker_id="w-live", version="1.0.0")
    assert status.install_ok and status.self_test_ok and status.downloaded_at
    assert updater.check_once().action == "none"


def test_tampered_artifact_is_refused(portal, tmp_path, settings):
    release = Release.objects.get(version="1.0.0")
    stored = Path(settings.MEDIA_ROOT) / release.artifact_name
    data = bytearray(stored.read_bytes())
    data[5000] ^= 0xFF
    stored.write_bytes(bytes(data))
    updater = _updater(portal(), tmp_path)
    outcome = updater.check_once()
    assert (outcome.action, outcome.reason) == ("refused", "artifact_checksum")
    assert not (tmp_path / "worker" / "versions" / "1.0.0").exists()
    assert WorkerReleaseStatus.objects.get(worker_id="w-live", version="1.0.0").last_ok is False


def test_tampered_manifest_is_refused(portal, tmp_path):
    channel = Channel.objects.get(name="stable")
    manifest = channel.manifest
    manifest["signed"]["release"]["sha256"] = "0" * 64
    Channel.objects.filter(pk=channel.pk).update(manifest=manifest)
    outcome = _updater(portal(), tmp_path).check_once()
    assert (outcome.action, outcome.reason) == ("refused", "manifest_bad_signature")


def test_manifest_signed_by_an_unknown_key_is_refused(portal, tmp_path):
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    import hashlib

    trusted = {hashlib.sha256(stranger).hexdigest()[:16]: stranger}
    outcome = _updater(portal(), tmp_path, trusted_keys=trusted).check_once()
    assert (outcome.action, outcome.reason) == ("refused", "manifest_unknown_key")


def test_lower_sequence_is_refused(portal, tmp_path):
    old = Channel.objects.get(name="stable").manifest
    channel_manifest_sign(channel_name="stable", actor="tests")
    updater = _updater(portal(), tmp_path)
    assert updater.check_once().action == "installed"
    Channel.objects.filter(name="stable").update(manifest=old)  # a replayed, older signed manifest
    outcome = updater.check_once()
    assert (outcome.action, outcome.reason) == ("refused", "manifest_rollback")
    # The highest sequence survives a restart of the worker.
    assert _updater(portal(), tmp_path).check_once().reason == "manifest_rollback"


def test_expired_manifest_is_refused(portal, tmp_path):
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    outcome = _updater(portal(), tmp_path, clock=lambda: ahead).check_once()
    assert (outcome.action, outcome.reason) == ("refused", "manifest_expired")


def test_failed_self_test_keeps_the_last_good_version(portal, tmp_path):
    updater = _updater(portal(), tmp_path, self_test=lambda folder, version: (False, {"error": "no chromium"}))
    outcome = updater.check_once()
    assert outcome.action == "rolled_back"
    assert updater.current_version == "0.9.0"
    assert updater.last_self_test == {"version": "1.0.0", "ok": False, "error": "no chromium"}
    status = WorkerReleaseStatus.objects.get(worker_id="w-live", version="1.0.0")
    assert status.self_test_ok is False and status.rolled_back_at is not None


def test_verifier_refuses_each_bad_manifest_offline():
    seed = os.urandom(32)
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    import hashlib

    from worker_client.updater import canonical_json

    key_id = hashlib.sha256(raw).hexdigest()[:16]

    def envelope(sequence: int, expires: str = "2999-01-01T00:00:00Z") -> dict:
        signed = {"schema": 1, "channel": "stable", "sequence": sequence, "expires_at": expires,
                  "release": None}
        return {"signed": signed, "signatures": [
            {"keyid": key_id, "sig": base64.b64encode(private.sign(canonical_json(signed))).decode()}]}

    verifier = ManifestVerifier({key_id: raw})
    assert verifier.verify(envelope(5))["sequence"] == 5
    with pytest.raises(UpdateRefused, match="manifest_rollback"):
        verifier.verify(envelope(4))
    with pytest.raises(UpdateRefused, match="manifest_expired"):
        verifier.verify(envelope(6, expires="2000-01-01T00:00:00Z"))
    tampered = envelope(7)
    tampered["signed"]["sequence"] = 8
    with pytest.raises(UpdateRefused, match="manifest_bad_signature"):
        verifier.verify(tampered)
    with pytest.raises(UpdateRefused, match="manifest_wrong_channel"):
        verifier.verify(envelope(9), channel="beta")


def test_worker_loop_updates_itself_and_heartbeats_its_self_test(portal, tmp_path):
    import random

    from worker_client.provider import SimulatedProvider
    from worker_client.worker import Worker as ReferenceWorker
    from workers_mgmt.models import Worker

    client = portal()
    updater = _updater(client, tmp_path)
    worker = ReferenceWorker(client, SimulatedProvider(rng=random.Random(1)), updater=updater,
                             version=updater.current_version)
    worker.run(duration=3)
    assert worker.version == "1.0.0"
    stored = Worker.objects.get(pk="w-live")
    assert stored.reported_version == "1.0.0"
    assert stored.last_self_test == {"version": "1.0.0", "ok": True, "entrypoint": "bin/worker.js"}


def _channel_on(name: str, version: str) -> None:
    """Channel `name` with `version` as its release (a finished rollout), its manifest signed."""
    from releases_app.services import rollout_promote, rollout_start

    rollout_start(version=version, channel_name=name, steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name=name, actor="tests")


def test_a_signed_manifest_of_another_channel_is_refused(portal, tmp_path):
    # beta names the same release and has a higher sequence: only its channel is wrong.
    _channel_on("beta", "1.0.0")
    for _ in range(5):
        channel_manifest_sign(channel_name="beta", actor="tests")
    stable = Channel.objects.get(name="stable")
    beta = Channel.objects.get(name="beta")
    assert beta.sequence > stable.sequence
    Channel.objects.filter(name="stable").update(manifest=beta.manifest)  # replayed to a stable worker
    updater = _updater(portal(), tmp_path)
    outcome = updater.check_once()
    assert (outcome.action, outcome.reason) == ("refused", "manifest_wrong_channel")
    assert updater.channel == "stable"  # from GET /config
    assert not (tmp_path / "worker" / "versions" / "1.0.0").exists()
    # Nothing of beta was remembered: its higher sequence cannot lock stable's manifests out.
    assert updater.verifier.sequences == {}
    Channel.objects.filter(name="stable").update(manifest=stable.manifest)
    assert updater.check_once().action == "installed"
    assert updater.verifier.sequences == {"stable": stable.sequence}


def test_a_worker_moved_to_another_channel_tracks_that_channel(portal, tmp_path, publish):
    from core.audit import Actor
    from workers_mgmt.models import Worker
    from workers_mgmt.services import worker_update

    publish("1.1.0")
    _channel_on("beta", "1.1.0")
    updater = _updater(portal(), tmp_path, channel="stable")
    assert updater.check_once().version == "1.0.0"
    stable_sequence = Channel.objects.get(name="stable").sequence
    worker_update(worker=Worker.objects.get(pk="w-live"), values={"channel": "beta"},
                  actor=Actor.command("tests"))
    outcome = updater.check_once()
    assert (outcome.action, outcome.version) == ("installed", "1.1.0")
    assert updater.channel == "beta"
    assert updater.verifier.sequences == {"stable": stable_sequence,
                                          "beta": Channel.objects.get(name="beta").sequence}


def test_switching_back_to_a_kept_version_downloads_nothing(portal, tmp_path, publish):
    from releases_app.services import channel_rollback

    transport = CuttingTransport()
    updater = _updater(portal(transport), tmp_path)
    assert updater.check_once().version == "1.0.0"
    publish("1.1.0")
    _channel_on("stable", "1.1.0")
    assert updater.check_once().version == "1.1.0"
    assert len(transport.download_ranges) == 2
    # What the 1.0.0 worker wrote into its folder while it ran survives the switch back to it.
    cache = tmp_path / "worker" / "versions" / "1.0.0" / "cache.bin"
    cache.write_bytes(b"warm")
    channel_rollback(channel_name="stable", actor="tests")
    rolled_back_at = timezone.now()
    outcome = updater.check_once()
    assert (outcome.action, outcome.version) == ("installed", "1.0.0")
    assert len(transport.download_ranges) == 2  # the kept 1.0.0 folder, not a new download
    assert cache.read_bytes() == b"warm"  # nor unpacked again
    assert updater.current_version == "1.0.0" and updater.last_good_version == "1.1.0"
    assert updater.last_self_test == {"version": "1.0.0", "ok": True, "entrypoint": "bin/worker.js"}
    # Every stage is still reported, so the portal (and a rollout's gates) see the switch.
    status = WorkerReleaseStatus.objects.get(worker_id="w-live", version="1.0.0")
    assert status.install_ok and status.self_test_ok and status.last_stage == "self_test"
    assert status.downloaded_at >= rolled_back_at and status.installed_at >= rolled_back_at


def test_a_kept_folder_from_another_artifact_is_unpacked_again(portal, tmp_path):
    updater = _updater(portal(), tmp_path)
    assert updater.check_once().version == "1.0.0"
    folder = tmp_path / "worker" / "versions" / "1.0.0"
    (folder / "bin" / "worker.js").write_text("tampered")
    # The folder is only reused when it was unpacked from the artifact this manifest names.
    updater.unpacked["1.0.0"] = "0" * 64
    updater.current_version = "0.9.0"
    assert updater.check_once().version == "1.0.0"
    assert (folder / "bin" / "worker.js").read_text() == "console.log('worker');\n"


def _reference_worker(client, updater):
    import random

    from worker_client.provider import SimulatedProvider
    from worker_client.worker import Worker as ReferenceWorker

    return ReferenceWorker(client, SimulatedProvider(rng=random.Random(1)), updater=updater,
                           version=updater.current_version)


@pytest.fixture
def fast_heartbeats(db):
    from workers_mgmt.models import WorkerConfig
    from workers_mgmt.services import worker_config_cache_clear

    # A heartbeat every second (the admin minimum is 5 s), and the interval check an hour away: only
    # the heartbeat's update_target can make these workers update within the test.
    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": 1,
                                                          "update_check_interval_s": 3600})
    worker_config_cache_clear()


def test_the_worker_updates_at_its_next_heartbeat_not_its_next_interval(portal, tmp_path, publish,
                                                                         fast_heartbeats):
    from releases_app.services import channel_rollback
    from tests.e2e.conftest import wait_until
    from workers_mgmt.models import Worker

    transport = CuttingTransport()
    client = portal(transport)
    updater = _updater(client, tmp_path)
    worker = _reference_worker(client, updater)
    worker.start()
    try:
        assert wait_until(lambda: Worker.objects.get(pk="w-live").reported_version == "1.0.0", timeout=15)
        publish("1.1.0")
        _channel_on("stable", "1.1.0")
        assert wait_until(lambda: Worker.objects.get(pk="w-live").reported_version == "1.1.0", timeout=15)
        channel_rollback(channel_name="stable", actor="tests")
        assert wait_until(lambda: Worker.objects.get(pk="w-live").reported_version == "1.0.0", timeout=15)
    finally:
        worker.stop(timeout=30)
    assert worker.version == "1.0.0"
    assert len(transport.download_ranges) == 2  # 1.0.0 and 1.1.0; the rollback reused 1.0.0


def test_a_failed_target_is_not_asked_for_on_every_heartbeat(portal, tmp_path, publish, fast_heartbeats):
    from tests.e2e.conftest import wait_until

    def self_test(folder, version):
        return (version != "1.1.0", {} if version != "1.1.0" else {"error": "no chromium"})

    transport = CuttingTransport()
    client = portal(transport)
    updater = _updater(client, tmp_path, self_test=self_test)
    worker = _reference_worker(client, updater)
    worker.start()
    try:
        assert wait_until(lambda: worker.version == "1.0.0", timeout=15)
        publish("1.1.0")
        _channel_on("stable", "1.1.0")
        assert wait_until(lambda: updater.last_self_test and updater.last_self_test["version"] == "1.1.0",
                          timeout=15)
        checks = transport.paths.count("/api/v1/updates/check")
        beats = worker.counters.heartbeats
        assert wait_until(lambda: worker.counters.heartbeats >= beats + 4, timeout=15)
        # Still told 1.1.0 by every heartbeat, it waits for its interval (or a new target).
        assert transport.paths.count("/api/v1/updates/check") == checks
    finally:
        worker.stop(timeout=30)
    assert worker.version == "1.0.0"
