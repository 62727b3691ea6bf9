"""Every guarantee in docs/RELIABILITY.md names at least one test that exists, by node id.

A row of "What is guaranteed" whose "proved by" cell names no existing test (`path.py::test_name`,
or `::test_name` after a path in the same cell) fails here, so a promise without a test fails CI.
Every other reference in the cell (a file, a helper such as `invariants.py::counter_problems`)
must exist too.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELIABILITY = ROOT / "docs" / "RELIABILITY.md"
# `path/to/file.py::name`, `::name` (same file as the reference before it) or `path/to/file.py`.
_REF = re.compile(r"`((?:[\w./-]+\.py)?)(?:::([\w\[\]-]+))?`")


def guarantee_rows() -> list[tuple[str, str]]:
    """(guarantee, proved-by cell) of every row of the "What is guaranteed" table."""
    text = RELIABILITY.read_text(encoding="utf-8")
    section = text.split("## What is guaranteed", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| guarantee", "|---")):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 2, f"a guarantee row has two cells: {line[:80]}"
        rows.append((cells[0], cells[1]))
    return rows


def references(cell: str) -> list[tuple[str, str | None]]:
    """(file, name or None) of every code reference in a cell; `::name` takes the file before it."""
    found: list[tuple[str, str | None]] = []
    current = ""
    for path, name in _REF.findall(cell):
        if path:
            current = path
        elif not current:
            continue  # `::name` with no file before it: reported by the test below
        if path or name:
            found.append((current, re.sub(r"\[.*\]$", "", name) if name else None))
    return found


@cache
def defined_names(path: str) -> frozenset[str]:
    """Module-level functions and methods of module-level classes (how pytest finds tests)."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{item.name}" for item in node.body
                      if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return frozenset(names)


def test_reliability_lists_guarantees():
    assert len(guarantee_rows()) >= 10


def _row_id(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.split("**")[1].lower()).strip("-")[:50] if "**" in value else "proof"


@pytest.mark.parametrize(("guarantee", "cell"), guarantee_rows(), ids=_row_id)
def test_every_guarantee_names_an_existing_test_by_node_id(guarantee, cell):
    refs = references(cell)
    missing = [f"{path}::{name}" if name else path for path, name in refs
               if not (ROOT / path).is_file() or (name is not None and name not in defined_names(path))]
    assert missing == [], f"{guarantee!r} names what does not exist: {missing}"
    tests = [f"{path}::{name}" for path, name in refs
             if name is not None and name.split("::")[-1].startswith("test_")]
    assert tests, f"{guarantee!r} names no test by node id (path.py::test_name)"


def test_a_promise_without_a_test_is_caught():
    # The checker itself: a made-up test, a bare file and a helper are not proof.
    assert references("`tests/x.py::test_a`, `::test_b`; `tests/y.py`") == [
        ("tests/x.py", "test_a"), ("tests/x.py", "test_b"), ("tests/y.py", None)]
    assert "test_the_books_balance_after_chaos" in defined_names("tests/chaos/test_chaos.py")
    assert "test_made_up" not in defined_names("tests/chaos/test_chaos.py")
