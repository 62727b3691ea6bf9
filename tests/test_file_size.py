"""No module grows past 500 lines (docs/CONTRIBUTING.md, "One module per concern").

A file that long holds more than one concern; split it into a package whose `__init__` shows what
callers use (docs/SYSTEM_OVERVIEW.md, "Public faces"). The benchmarks and the reference worker are
scripts and a standalone package, and are left out.
"""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LIMIT = 500
LEFT_OUT = {"bench", "worker_client", ".venv", "node_modules", "storage", "dist", ".git"}
SUFFIXES = {".py", ".js", ".mjs", ".html", ".css"}


def test_no_source_file_is_over_500_lines():
    too_long = []
    for path in BASE_DIR.rglob("*"):
        relative = path.relative_to(BASE_DIR)
        if path.suffix not in SUFFIXES or LEFT_OUT & set(relative.parts) or not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").count("\n")
        if lines > LIMIT:
            too_long.append(f"{relative}: {lines} lines")
    assert too_long == [], "split these (at most 500 lines each):\n" + "\n".join(too_long)
