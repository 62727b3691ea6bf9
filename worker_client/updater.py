"""Self-update of the reference worker: check, verify, download with resume, install, self-test, report.

What a worker must check before it runs new code (docs/RELEASES.md, "How a worker verifies a manifest"):
1. the channel manifest carries a valid Ed25519 signature, over the canonical JSON of `signed`, by
   a key the worker trusts (any one of them: keys are rotated with an overlap);
2. it is the manifest of this worker's channel (`channel` of GET /config: a validly signed manifest
   of another channel replayed to it is refused), its `sequence` is not lower than the highest this
   worker has accepted for that channel (no rollback to an old manifest) and its `expires_at` has
   not passed (no frozen manifest);
3. the target the server offers is named, with the same SHA-256 and size, by that manifest;
4. the downloaded bytes have that size and SHA-256.
Only then is the archive unpacked, into a fresh folder of its own, refusing any member that would
land outside it. A failing self-test sends the worker back to its last good version.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from worker_client.client import LeadOpsClient
from worker_client.errors import ClientError, TransportFailure

logger = logging.getLogger("worker_client.updater")

MANIFEST_NAME = "worker-manifest.json"


class UpdateRefused(Exception):
    """The worker will not install what it was offered; `code` says why (and is reported)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII: the bytes the portal signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def trusted_keys_from(pairs: Mapping[str, str]) -> dict[str, bytes]:
    """{key id: base64 raw public key} (what `signing_public_key --json` prints) -> raw keys."""
    keys = {}
    for key_id, public_b64 in pairs.items():
        raw = base64.b64decode(public_b64)
        if len(raw) != 32 or hashlib.sha256(raw).hexdigest()[:16] != key_id:
            raise ValueError(f"trusted key {key_id} does not match its public key")
        keys[key_id] = raw
    return keys


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise UpdateRefused("manifest_invalid", "expires_at is missing")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class ManifestVerifier:
    """Checks channel manifests and remembers the highest sequence accepted per channel."""

    def __init__(self, trusted_keys: Mapping[str, bytes], *, state_path: Path | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.trusted_keys = dict(trusted_keys)
        self.state_path = state_path
        self.clock = clock
        self.sequences: dict[str, int] = {}
        if state_path is not None and state_path.exists():
            self.sequences = {k: int(v) for k, v in json.loads(state_path.read_text()).items()}

    def verify(self, envelope: Any, *, channel: str | None = None) -> dict[str, Any]:
        """The manifest's `signed` part when it passes every check; UpdateRefused otherwise."""
        if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict):
            raise UpdateRefused("manifest_invalid", "not a signed manifest")
        signed = envelope["signed"]
        message = canonical_json(signed)
        signatures = envelope.get("signatures")
        if not isinstance(signatures, list):
            raise UpdateRefused("manifest_invalid", "no signatures")
        known = [entry for entry in signatures
                 if isinstance(entry, dict) and entry.get("keyid") in self.trusted_keys]
        if not known:
            raise UpdateRefused("manifest_unknown_key", "signed by no key this worker trusts")
        if not any(self._signature_ok(entry, message) for entry in known):
            raise UpdateRefused("manifest_bad_signature", "the signature does not match the manifest")
        name = signed.get("channel")
        if not isinstance(name, str) or (channel is not None and name != channel):
            raise UpdateRefused("manifest_wrong_channel", f"manifest is for channel {name!r}")
        sequence = signed.get("sequence")
        if type(sequence) is not int:
            raise UpdateRefused("manifest_invalid", "sequence is missing")
        if sequence < self.sequences.get(name, 0):
            raise UpdateRefused("manifest_rollback",
                                f"sequence {sequence} is lower than {self.sequences[name]} already seen")
        if _parse_time(signed.get("expires_at")) <= self.clock():
            raise UpdateRefused("manifest_expired", f"expired at {signed.get('expires_at')}")
        self.sequences[name] = sequence
        if self.state_path is not None:
            self.state_path.write_text(json.dumps(self.sequences))
        return signed

    def _signature_ok(self, entry: dict[str, Any], message: bytes) -> bool:
        try:
            signature = base64.b64decode(entry.get("sig", ""), validate=True)
            Ed25519PublicKey.from_public_bytes(self.trusted_keys[entry["keyid"]]).verify(signature, message)
        except (InvalidSignature, ValueError, binascii.Error, TypeError):
            return False
        return True


def manifest_entry_for(signed: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest's entry naming the target (release, previous or a pinned one), or refuse."""
    candidates = [signed.get("release"), signed.get("previous"), *(signed.get("pinned") or [])]
    for entry in candidates:
        if isinstance(entry, dict) and entry.get("version") == target.get("version"):
            if entry.get("sha256") != target.get("sha256") or entry.get("size") != target.get("size"):
                raise UpdateRefused("target_mismatch", "the target differs from what the manifest signs")
            return entry
    raise UpdateRefused("target_not_in_manifest", f"version {target.get('version')!r} is not in the manifest")


def _member_problem(name: str) -> str | None:
    if not name or "\x00" in name or "\\" in name:
        return "bad name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in path"
    return None


def _link_escapes(name: str, target: str, *, hard: bool) -> bool:
    if not target or target.startswith("/") or "\\" in target:
        return True
    resolved = posixpath.normpath(posixpath.join("" if hard else posixpath.dirname(name), target))
    return resolved == ".." or resolved.startswith("../")


def safe_extract(archive_path: Path, destination: Path) -> None:
    """Unpack a .tar.gz or .zip into `destination` (which must not exist), refusing escaping members."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=destination.parent))
    try:
        with open(archive_path, "rb") as handle:
            head = handle.read(4)
        if head.startswith(b"PK"):
            with zipfile.ZipFile(archive_path) as archive:
                for info in archive.infolist():
                    if _member_problem(info.filename) or (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise UpdateRefused("artifact_unsafe", f"member {info.filename!r} would escape")
                archive.extractall(staging)  # noqa: S202 (every member name was checked above)
        else:
            with tarfile.open(archive_path, "r:gz") as archive:
                members = archive.getmembers()
                for member in members:
                    bad = _member_problem(member.name)
                    if not bad and (member.issym() or member.islnk()):
                        escapes = _link_escapes(member.name, member.linkname, hard=member.islnk())
                        bad = "link outside the folder" if escapes else None
                    if not bad and (member.isdev() or member.isfifo()):
                        bad = "device"
                    if bad:
                        raise UpdateRefused("artifact_unsafe", f"member {member.name!r}: {bad}")
                # The "data" filter (Python 3.11.4+) refuses the same things again, inside tarfile.
                archive.extractall(staging, members=members, filter="data")
        os.replace(staging, destination)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UpdateRefused("artifact_corrupt", f"{type(exc).__name__}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def default_self_test(folder: Path, version: str) -> tuple[bool, dict[str, Any]]:
    """The installed folder names the version and holds its entrypoint (a real worker also launches it)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return False, {"error": f"{MANIFEST_NAME} unreadable"}
    if manifest.get("version") != version:
        return False, {"error": "version mismatch"}
    entry = manifest.get("entrypoint")
    if not isinstance(entry, str) or not (folder / entry).is_file():
        return False, {"error": "entrypoint missing"}
    return True, {"entrypoint": entry}


SelfTest = Callable[[Path, str], tuple[bool, dict[str, Any]]]


@dataclass
class UpdateOutcome:
    action: str          # "none", "installed", "refused", "rolled_back", "failed"
    version: str | None = None
    reason: str = ""


class Updater:
    """Keeps a worker's install folder on the version the portal assigns.

    Layout under `root`: `versions/<version>/` (one folder per install, kept), `downloads/` (partial
    and complete artifacts), `state.json` (current and last good version, and the SHA-256 of the
    artifact each version folder was unpacked from), `sequences.json` (highest sequence per channel).

    `channel` is the worker's channel (`channel` of GET /config; the reference `Worker` hands it over
    each time it loads the config); when it is not given, the first check asks GET /config.
    """

    def __init__(self, client: LeadOpsClient, *, root: Path, trusted_keys: Mapping[str, bytes],
                 current_version: str, self_test: SelfTest = default_self_test,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 download_attempts: int = 5, channel: str | None = None,
                 reporter: Callable[[str, str, bool, dict[str, Any]], None] | None = None) -> None:
        self.client = client
        # Where stage reports go: sent at once by default; the supervising agent queues them on a
        # thread of its own (in order), so a switch never waits for them.
        self.reporter = reporter
        self.channel = channel
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        (self.root / "downloads").mkdir(parents=True, exist_ok=True)
        self.verifier = ManifestVerifier(trusted_keys, state_path=self.root / "sequences.json", clock=clock)
        self.self_test = self_test
        self.download_attempts = download_attempts
        state = self._state_load()
        self.current_version: str = state.get("current", current_version)
        self.last_good_version: str | None = state.get("last_good")
        unpacked = state.get("unpacked")
        self.unpacked: dict[str, str] = dict(unpacked) if isinstance(unpacked, dict) else {}
        self.last_self_test: dict[str, Any] | None = None

    # --- one round ---------------------------------------------------------------------------------

    def check_once(self) -> UpdateOutcome:
        """Ask the portal, verify, and install what it assigns; never raises for a refused update."""
        entry, outcome = self.assigned()
        if entry is None:
            return outcome
        return self.install(entry)

    def assigned(self) -> tuple[dict[str, Any] | None, UpdateOutcome]:
        """Ask /updates/check and verify: (the signed manifest entry to install, or None and why not)."""
        answer = self.client.update_check(version=self.current_version)
        try:
            signed = self._verify_for_channel(answer.get("manifest"))
            target = answer.get("target")
            if not isinstance(target, dict):
                return None, UpdateOutcome("none", reason=str(answer.get("reason", "")))
            return manifest_entry_for(signed, target), UpdateOutcome("assigned", str(target.get("version")))
        except UpdateRefused as refused:
            logger.warning("worker %s refused an update: %s", self.client.worker_id, refused)
            return None, UpdateOutcome("refused", reason=refused.code)

    def current_set(self, version: str, *, last_good: str | None) -> None:
        """Record what runs now (the supervising agent after a switch or a rollback)."""
        self.current_version, self.last_good_version = version, last_good
        self._state_save()

    def report(self, version: str, stage: str, ok: bool, details: dict[str, Any]) -> None:
        """Send one stage report; a lost report is logged, never raised (the next check repeats it)."""
        self._report(version, stage, ok, details)

    def _verify_for_channel(self, manifest: Any) -> dict[str, Any]:
        """Verify against this worker's channel; learn a new channel once if staff moved the worker."""
        channel = self.channel if self.channel is not None else self._channel_fetch()
        try:
            return self.verifier.verify(manifest, channel=channel)
        except UpdateRefused as refused:
            if refused.code != "manifest_wrong_channel":
                raise
            # A validly signed manifest of another channel: either a replay (refuse) or staff moved
            # this worker and the portal now answers its new channel's manifest. The portal's
            # config says which; sequences are kept per channel, so the new one is tracked from here.
            moved_to = self._channel_fetch()
            if moved_to == channel:
                raise
            logger.info("worker %s is now on channel %s", self.client.worker_id, moved_to)
            return self.verifier.verify(manifest, channel=moved_to)

    def channel_follow(self, config: Mapping[str, Any]) -> str | None:
        """Take the channel the portal's config names (a manifest of any other channel is refused);
        None when it names none, and the channel stays as it was."""
        channel = config.get("channel")
        if not isinstance(channel, str) or not channel:
            return None
        self.channel = channel
        return channel

    def _channel_fetch(self) -> str:
        channel = self.channel_follow(self.client.config())
        if channel is None:
            raise UpdateRefused("manifest_wrong_channel", "the portal names no channel for this worker")
        return channel

    def kept(self, entry: Mapping[str, Any]) -> bool:
        """This version's folder is here, unpacked from the artifact the manifest entry names."""
        version = str(entry["version"])
        unpacked_from = self.unpacked.get(version)
        return (self.root / "versions" / version).is_dir() and unpacked_from == str(entry["sha256"])

    def install(self, entry: Mapping[str, Any]) -> UpdateOutcome:
        version, sha256 = str(entry["version"]), str(entry["sha256"])
        folder = self.root / "versions" / version
        # A version kept from an earlier install (the one a rollback goes back to) is switched to
        # without downloading or unpacking it again, when its folder was unpacked from an artifact
        # with the SHA-256 this signed manifest names; otherwise it is fetched and unpacked afresh.
        reuse = self.kept(entry)
        if not reuse:
            try:
                artifact = self.download(entry)
            except UpdateRefused as refused:
                self._report(version, "downloaded", False, {"error": refused.code})
                return UpdateOutcome("refused", version, refused.code)
            except ClientError as exc:
                return UpdateOutcome("failed", version, f"download: {exc}")
        self._report(version, "downloaded", True, {"sha256": sha256, **({"kept": True} if reuse else {})})
        if not reuse:
            try:
                if self.unpacked.pop(version, None) is not None:
                    self._state_save()
                if folder.exists():
                    shutil.rmtree(folder)
                safe_extract(artifact, folder)
            except UpdateRefused as refused:
                self._report(version, "installed", False, {"error": refused.code})
                return UpdateOutcome("refused", version, refused.code)
            self.unpacked[version] = sha256
            self._state_save()
        self._report(version, "installed", True, {"kept": True} if reuse else {})
        ok, details = self.self_test(folder, version)
        self.last_self_test = {"version": version, "ok": ok, **details}
        self._report(version, "self_test", ok, details)
        if not ok:
            # Keep running the last good version; the portal learns why from the report.
            self._report(version, "rolled_back", True, {"to_version": self.current_version, **details})
            return UpdateOutcome("rolled_back", version, "self_test failed")
        self.last_good_version, self.current_version = self.current_version, version
        self._state_save()
        return UpdateOutcome("installed", version)

    # --- download --------------------------------------------------------------------------------

    def download(self, entry: Mapping[str, Any]) -> Path:
        """Fetch the artifact, resuming a partial file with Range; check its size and SHA-256."""
        version, size, sha256 = str(entry["version"]), int(entry["size"]), str(entry["sha256"])
        final = self.root / "downloads" / f"{version}-{sha256[:16]}.artifact"
        if final.exists() and _sha256_file(final) == sha256:
            return final
        part = final.with_suffix(".part")
        for attempt in range(1, self.download_attempts + 1):
            offset = part.stat().st_size if part.exists() else 0
            if offset > size:
                part.unlink()
                offset = 0
            try:
                with open(part, "ab" if offset else "wb") as sink:
                    if offset < size:
                        self.client.download(str(entry["url"]), sink, offset=offset)
                break
            except TransportFailure as exc:
                logger.warning("download of %s interrupted (%s); resuming (try %d)", version, exc, attempt)
                if attempt == self.download_attempts:
                    raise
        if part.stat().st_size != size or _sha256_file(part) != sha256:
            part.unlink(missing_ok=True)
            raise UpdateRefused("artifact_checksum", "the downloaded bytes do not match the manifest")
        os.replace(part, final)
        return final

    # --- state and reports ---------------------------------------------------------------------------

    def _report(self, version: str, stage: str, ok: bool, details: dict[str, Any]) -> None:
        if self.reporter is not None:
            self.reporter(version, stage, ok, details)
            return
        self.report_send(version, stage, ok, details)

    def report_send(self, version: str, stage: str, ok: bool, details: dict[str, Any]) -> None:
        """POST /updates/report now; a lost report is logged, never raised."""
        try:
            self.client.update_report(version, stage, ok, details)
        except ClientError as exc:
            logger.warning("update report %s/%s not delivered: %s", version, stage, exc)

    def _state_load(self) -> dict[str, Any]:
        path = self.root / "state.json"
        try:
            return json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            return {}

    def _state_save(self) -> None:
        path = self.root / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"current": self.current_version, "last_good": self.last_good_version,
                                   "unpacked": self.unpacked}))
        os.replace(tmp, path)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
