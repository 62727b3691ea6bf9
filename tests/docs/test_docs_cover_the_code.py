"""The operator docs name every setting, command and error code the code has.

These fail when someone adds an environment variable, a management command or an error code without
telling the people who run the portal or write workers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PROJECT_APPS = ("leadops", "workers_mgmt", "queueing", "ingestion", "releases_app", "alerts")


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def settings_env_vars() -> set[str]:
    source = (ROOT / "leadops" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    from leadops.devkeys import REQUIRED_KEYS

    return names | set(REQUIRED_KEYS)


def project_commands() -> set[str]:
    return {
        path.stem
        for app in PROJECT_APPS
        for path in (ROOT / app / "management" / "commands").glob("*.py")
        if not path.stem.startswith("_")
    }


@pytest.mark.parametrize("name", sorted(settings_env_vars()))
def test_deploy_doc_names_every_environment_variable(name):
    assert f"`{name}`" in read("DEPLOY.md")


@pytest.mark.parametrize("command", sorted(project_commands()))
def test_runbook_documents_every_management_command(command):
    assert f"`{command}" in read("RUNBOOK.md")


def protocol_error_codes() -> set[str]:
    import queueing.services  # noqa: F401  (defines the queue's error classes)
    from core.errors import ProtocolError

    codes, todo = set(), [ProtocolError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return codes


def test_api_doc_lists_every_protocol_error_code():
    doc = read("API.md")
    missing = sorted(code for code in protocol_error_codes() if f"`{code}`" not in doc)
    assert not missing, missing


def test_every_operator_doc_exists():
    for name in ("API.md", "SYSTEM_OVERVIEW.md", "RUNBOOK.md", "DEPLOY.md", "PRIVACY.md", "CHANGELOG.md"):
        assert read(name).startswith("# "), name


def test_system_overview_lists_every_periodic_task():
    from leadops.schedules import PERIODIC_TASKS

    doc = read("SYSTEM_OVERVIEW.md")
    missing = [name for name, _func, _minutes in PERIODIC_TASKS if f"| {name} |" not in doc]
    assert not missing, missing
