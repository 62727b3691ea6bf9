"""Build the reference worker as a release artifact: `make worker-release VERSION=x.y.z`.

    python -m worker_client.release --version 1.2.0 [--out dist] [--source DIR]

The `.tar.gz` holds, at its top level, `worker-manifest.json` (`version`, `entrypoint`, and what the
agent and operators read: `kind`, `python`, `min_agent`), the entrypoint `run_worker.py` and the
`worker_client` package (without its tests). `release_publish` accepts it as it is
(docs/RELEASES.md, "Releases"). The build is reproducible: members are sorted and carry a fixed
time, owner and mode, so the same source and version give the same bytes (and SHA-256).

Only the standard library is used here, so a build machine needs nothing but Python.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

ENTRYPOINT = "run_worker.py"
MANIFEST_NAME = "worker-manifest.json"
PACKAGE = "worker_client"
VERSION_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$")
# The newest agent protocol (worker_client/runtime.py) the release speaks; the oldest agent it needs.
MIN_AGENT = "1"

ENTRYPOINT_SOURCE = '''"""The entrypoint of a LeadOps reference worker release (run with the agent's Python).

Python puts this file's folder first on sys.path, so `worker_client` is this release's own copy.
"""

import sys

from worker_client.__main__ import main

sys.exit(main())
'''


def package_files(source: Path) -> list[Path]:
    """The package's files that ship: sources and data, never tests or bytecode."""
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if not path.is_file() or "__pycache__" in relative.parts or relative.parts[0] == "tests":
            continue
        if path.suffix in (".pyc", ".pyo"):
            continue
        files.append(path)
    return files


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


def build(version: str, *, source: Path | None = None) -> bytes:
    """The artifact's bytes for `version`, from the `worker_client` package at `source`."""
    if not VERSION_PATTERN.match(version):
        raise ValueError(f"not a release version: {version!r}")
    source = (source or Path(__file__).resolve().parent).resolve()
    if not (source / "__main__.py").is_file():
        raise ValueError(f"{source} is not the worker_client package")
    manifest = {"version": version, "entrypoint": ENTRYPOINT, "kind": "reference-py",
                "python": f">={sys.version_info[0]}.{sys.version_info[1]}", "min_agent": MIN_AGENT}
    members = [(MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"),
               (ENTRYPOINT, ENTRYPOINT_SOURCE.encode())]
    members += [(f"{PACKAGE}/{path.relative_to(source).as_posix()}", path.read_bytes())
                for path in package_files(source)]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            archive.addfile(*_member(name, data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as zipped:
        zipped.write(raw.getvalue())
    return packed.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker_client.release",
                                     description="Build the reference worker release artifact.")
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", type=Path, default=Path("dist"),
                        help="Folder for the artifact (default dist/).")
    parser.add_argument("--source", type=Path, default=None,
                        help="The worker_client package to pack (default: this one).")
    args = parser.parse_args(argv)
    try:
        data = build(args.version, source=args.source)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"leadops-worker-{args.version}.tar.gz"
    path.write_bytes(data)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
