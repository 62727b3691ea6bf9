"""`readiness`: a fresh portal is no-go with every gate and its why (docs/PRODUCTION_READINESS.md)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

GATE_NAMES = ["secrets", "updates", "breakers_dlq", "alerts", "privacy", "throttling"]


def readiness_json(capsys) -> tuple[int, dict]:
    capsys.readouterr()
    try:
        call_command("readiness", "--json")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(capsys.readouterr().out)


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
