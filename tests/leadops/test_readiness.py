"""`readiness`: a fresh portal is no-go with every gate and its why (docs/PRODUCTION_READINESS.md)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.leadops.readiness_install import readiness_json

pytestmark = pytest.mark.django_db

GATE_NAMES = ["secrets", "updates", "breakers_dlq", "alerts", "privacy", "throttling"]


def test_fresh_portal_is_no_go_with_every_gate_and_its_why(capsys):
    code, answer = readiness_json(capsys)

    assert code == 1
    assert answer["go"] is False
    assert set(answer) == {"go", "checked_at", "gates"}
    assert [gate["name"] for gate in answer["gates"]] == GATE_NAMES
    for gate in answer["gates"]:
        assert set(gate) == {"name", "ok", "why", "evidence"}
        assert gate["why"] and "\n" not in gate["why"]
        assert gate["evidence"] and all(link["url"].startswith("/admin/") for link in gate["evidence"])
    failing = {gate["name"]: gate["why"] for gate in answer["gates"] if not gate["ok"]}
    # Nothing delivers alerts and no purge ever ran: those say what to do.
    assert "alert_test" in failing["alerts"] or "alert_receiver_set" in failing["alerts"]
    assert "purge_retention" in failing["privacy"]


def test_text_output_lists_every_gate(capsys):
    with pytest.raises(SystemExit) as exited:
        call_command("readiness")
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert out.startswith("NO-GO")
    for name in GATE_NAMES:
        assert f"] {name}: " in out


def test_metrics_expose_each_gate_and_the_build(client, admin_user):
    from prometheus_client.parser import text_string_to_metric_families

    import leadops

    client.force_login(admin_user)
    families = {family.name: family for family in
                text_string_to_metric_families(client.get("/metrics").content.decode())}
    gates = {sample.labels["gate"]: sample.value for sample in families["leadops_readiness_gate"].samples}
    assert list(gates) == GATE_NAMES
    assert gates["privacy"] == 0  # no purge ran yet
    assert families["leadops_readiness_go"].samples[0].value == 0
    build = families["leadops_build_info"].samples[0]
    assert build.value == 1 and build.labels == {"version": leadops.__version__}


def test_admin_readiness_page_shows_every_gate_its_why_and_evidence(client, admin_user):
    client.force_login(admin_user)
    page = client.get("/admin/readiness/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "NO-GO" in html
    for name in GATE_NAMES:
        assert f'data-gate="{name}"' in html
    assert "purge_retention" in html and 'href="/admin/alerts/receiver/"' in html


def test_readiness_page_is_for_staff_only(client):
    assert client.get("/admin/readiness/").status_code == 302


def test_a_gate_that_never_held_raises_no_alert(capsys):
    from alerts.models import Alert

    call_command("alerts_evaluate", "--once")
    assert not Alert.objects.filter(labels__alertname="readiness_lost").exists()


def test_version_is_one_release_everywhere(capsys):
    """manage.py version, the package, pyproject and the changelog's newest release agree."""
    import re
    import tomllib
    from pathlib import Path

    import leadops

    root = Path(__file__).resolve().parents[2]
    call_command("version")
    printed = capsys.readouterr().out.strip()
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    released = re.findall(r"^## (\d+\.\d+\.\d+) ", (root / "docs" / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert printed == leadops.__version__ == pyproject == released[0]
    assert re.fullmatch(r"\d+\.\d+\.\d+", printed)


def test_manage_py_version_prints_leadops_not_django():
    """Django answers `version` itself before looking for commands; manage.py routes it to ours."""
    import subprocess
    import sys
    from pathlib import Path

    import leadops

    root = Path(__file__).resolve().parents[2]
    answer = subprocess.run([sys.executable, "manage.py", "version"], cwd=root, capture_output=True,
                            text=True, timeout=60, check=True)
    assert answer.stdout.strip() == leadops.__version__
