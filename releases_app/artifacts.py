"""The server's self-test of an uploaded worker artifact (docs/RELEASES.md, "Releases").

The archive is read member by member, never unpacked to disk: there is no folder an evil member
name could escape from. Every member is read to its end (so a truncated or corrupt archive fails its
checksum here, not on 1,000 workers), and the names are checked as if they were unpacked into one
folder: no absolute path, no `..`, no link that points outside, no device file.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

MANIFEST_NAME = "worker-manifest.json"
MAX_MEMBERS = 20_000
MAX_MANIFEST_BYTES = 64 * 1024
_CHUNK = 1024 * 1024


@dataclass
class SelfTestReport:
    ok: bool = True
    format: str = ""
    members: int = 0
    unpacked_bytes: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.ok = False
        if len(self.errors) < 20:
            self.errors.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "format": self.format, "members": self.members,
                "unpacked_bytes": self.unpacked_bytes, "manifest": self.manifest, "errors": self.errors}


def member_path_problem(name: str) -> str | None:
    """Why a member name would land outside the folder it is unpacked into, or None."""
    if not name or "\x00" in name:
        return "empty name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/"):
        return "'..' in path"
    return None


def link_target_problem(member_name: str, target: str, *, hard: bool) -> str | None:
    """Why a link member would point outside the folder, or None (hard links are archive-relative)."""
    if not target or target.startswith("/") or "\\" in target:
        return "link to an absolute or empty target"
    base = "" if hard else posixpath.dirname(member_name)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        return "link points outside the archive folder"
    return None


def artifact_self_test(
    *, fileobj: IO[bytes], expected_version: str, max_unpacked_bytes: int
) -> SelfTestReport:
    """Check an artifact: integrity, member paths and links, and its manifest names `expected_version`."""
    report = SelfTestReport()
    head = fileobj.read(4)
    fileobj.seek(0)
    manifest_bytes: bytes | None = None
    try:
        if head.startswith(b"PK"):
            report.format = "zip"
            manifest_bytes = _check_zip(fileobj, report, max_unpacked_bytes)
        elif head.startswith(b"\x1f\x8b"):
            report.format = "tar.gz"
            manifest_bytes = _check_tar(fileobj, report, max_unpacked_bytes)
        else:
            report.fail("not a .tar.gz or .zip archive")
            return report
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        # zlib and tar errors carry no secrets, only what is wrong with the bytes.
        report.fail(f"archive is corrupt: {type(exc).__name__}: {exc}"[:300])
        return report
    if manifest_bytes is None:
        report.fail(f"no {MANIFEST_NAME} at the top level")
        return report
    _check_manifest(manifest_bytes, report, expected_version)
    return report


def _account(report: SelfTestReport, name: str, size: int, max_unpacked_bytes: int) -> bool:
    report.members += 1
    report.unpacked_bytes += size
    if report.members > MAX_MEMBERS:
        report.fail(f"more than {MAX_MEMBERS} members")
        return False
    if report.unpacked_bytes > max_unpacked_bytes:
        report.fail(f"unpacks to more than {max_unpacked_bytes} bytes")
        return False
    problem = member_path_problem(name)
    if problem:
        report.fail(f"member {name[:200]!r}: {problem}")
    return True


def _check_tar(fileobj: IO[bytes], report: SelfTestReport, max_unpacked_bytes: int) -> bytes | None:
    manifest: bytes | None = None
    # Stream mode reads the archive once, front to back, and every member's data to its end, so
    # the gzip CRC and length at the end of the file are checked too.
    with tarfile.open(fileobj=fileobj, mode="r|gz") as archive:
        for member in archive:
            name = member.name[2:] if member.name.startswith("./") else member.name
            if not _account(report, name, member.size, max_unpacked_bytes):
                return manifest
            if member.issym() or member.islnk():
                problem = link_target_problem(name, member.linkname, hard=member.islnk())
                if problem:
                    report.fail(f"member {name[:200]!r}: {problem}")
            elif member.isdev() or member.isfifo():
                report.fail(f"member {name[:200]!r}: device or fifo")
            elif member.isfile():
                data = archive.extractfile(member)
                if data is None:
                    continue
                if name == MANIFEST_NAME:
                    manifest = data.read(MAX_MANIFEST_BYTES + 1)
                while data.read(_CHUNK):
                    pass
    return manifest


def _check_zip(fileobj: IO[bytes], report: SelfTestReport, max_unpacked_bytes: int) -> bytes | None:
    manifest: bytes | None = None
    with zipfile.ZipFile(fileobj) as archive:
        for info in archive.infolist():
            if not _account(report, info.filename, info.file_size, max_unpacked_bytes):
                return manifest
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                # A symlink in a zip: its target is the member's data.
                target = archive.read(info).decode("utf-8", "replace")
                problem = link_target_problem(info.filename, target, hard=False)
                if problem:
                    report.fail(f"member {info.filename[:200]!r}: {problem}")
                continue
            if info.is_dir():
                continue
            # Reading to the end checks the member's CRC-32; a bad one raises BadZipFile.
            with archive.open(info) as data:
                read = 0
                while chunk := data.read(_CHUNK):
                    read += len(chunk)
                    if read > info.file_size:
                        raise zipfile.BadZipFile(f"{info.filename} is larger than its header says")
                    if info.filename == MANIFEST_NAME and manifest is None:
                        manifest = chunk[: MAX_MANIFEST_BYTES + 1]
            if info.filename == MANIFEST_NAME and manifest is None:
                manifest = b""
    return manifest


def _check_manifest(raw: bytes, report: SelfTestReport, expected_version: str) -> None:
    if len(raw) > MAX_MANIFEST_BYTES:
        report.fail(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
        return
    try:
        manifest = json.loads(io.BytesIO(raw).read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        report.fail(f"{MANIFEST_NAME} is not JSON")
        return
    if not isinstance(manifest, dict):
        report.fail(f"{MANIFEST_NAME} is not a JSON object")
        return
    kept = ("version", "entrypoint", "node", "chromium", "min_agent")
    report.manifest = {key: manifest[key] for key in kept if isinstance(manifest.get(key), str)}
    version = manifest.get("version")
    if version != expected_version:
        report.fail(f"{MANIFEST_NAME} names version {str(version)[:63]!r}, not {expected_version!r}")
    entrypoint = manifest.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint:
        report.fail(f"{MANIFEST_NAME} has no entrypoint")
    elif member_path_problem(entrypoint):
        report.fail(f"entrypoint {entrypoint[:200]!r} is outside the folder")
