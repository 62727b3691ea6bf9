"""Modules meet through public names (docs/SYSTEM_OVERVIEW.md, "Layers", "Public faces").

A leading underscore means "this module's own business": nothing in the project imports such a name
from another module. What a sibling module needs is a public name of the module that owns it; what
another package needs is exposed by that package's `__init__` and imported from there.
Tests may still reach into the module they test; the project's own code may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT = ("core", "leadops", "ingestion", "queueing", "workers_mgmt", "releases_app", "alerts", "worker_client")


def _sources() -> list[tuple[str, Path]]:
    found = []
    for root in PROJECT:
        for path in sorted((BASE_DIR / root).rglob("*.py")):
            relative = path.relative_to(BASE_DIR)
            if "migrations" in relative.parts or "tests" in relative.parts:
                continue
            found.append((".".join(relative.with_suffix("").parts), path))
    return found


def _packages() -> set[str]:
    return {
        ".".join(path.parent.relative_to(BASE_DIR).parts)
        for root in PROJECT for path in (BASE_DIR / root).rglob("__init__.py")
    }


def _imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every absolute `from module import name` in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
            for alias in node.names]


def test_no_private_name_is_imported_from_another_module():
    crossings = [
        f"{path.relative_to(BASE_DIR)}:{line}: {module}.{name}"
        for me, path in _sources()
        for line, module, name in _imports(path)
        if module.split(".")[0] in PROJECT and module != me
        and name.startswith("_") and not name.startswith("__")
    ]
    assert crossings == [], "private names imported across modules:\n" + "\n".join(crossings)


def test_other_packages_import_a_sub_package_through_its_init():
    packages = _packages()
    deep = []
    for me, path in _sources():
        for line, module, _name in _imports(path):
            parent = module.rpartition(".")[0]
            # `module` is a plain module inside a sub-package (queueing.services.report): only that
            # sub-package's own modules may import it directly.
            if (module.split(".")[0] in PROJECT and module not in packages and parent in packages
                    and "." in parent and not me.startswith(parent + ".") and me != parent):
                deep.append(f"{path.relative_to(BASE_DIR)}:{line}: {module}")
    assert deep == [], "import these through their package's __init__:\n" + "\n".join(deep)
