"""Worker artifacts for tests: real .tar.gz and .zip archives, good and evil, built in memory."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from typing import Any


def worker_manifest(version: str, **extra: Any) -> bytes:
    return json.dumps({"version": version, "entrypoint": "bin/worker.js", "node": "20.11.1", **extra}).encode()


def tar_artifact(version: str, *, manifest_version: str | None = None, extra: list[tarfile.TarInfo] | None = None,
                 payload: bytes = b"console.log('worker');\n", include_manifest: bool = True,
                 padding: int = 0) -> bytes:
    """A gzip'd tar with worker-manifest.json at the top; `extra` members are added as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        members: list[tuple[tarfile.TarInfo, bytes | None]] = []
        if include_manifest:
            members.append((_file("worker-manifest.json", 0), worker_manifest(manifest_version or version)))
        members.append((_file("bin/worker.js", 0), payload))
        if padding:
            # Incompressible bytes, so a download is long enough to be cut in the middle.
            import random

            members.append((_file("assets/blob.bin", 0), random.Random(7).randbytes(padding)))
        for info, data in members:
            info.size = len(data or b"")
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
        for info in extra or []:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def _file(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info


def tar_member(name: str, *, kind: bytes = tarfile.REGTYPE, linkname: str = "", size: int = 1) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


def zip_artifact(version: str, *, manifest_version: str | None = None,
                 extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("worker-manifest.json", worker_manifest(manifest_version or version))
        archive.writestr("bin/worker.js", b"console.log('worker');\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()
