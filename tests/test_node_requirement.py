"""Node tests never skip in CI: without a usable node they fail under CI=true, and .ci/run installs it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.node import require_node

ROOT = Path(__file__).resolve().parents[1]


def test_node_test_fails_under_ci_when_node_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Node tests: node is not installed"):
        require_node()


def test_node_test_skips_off_ci_when_node_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        require_node()


def test_node_test_fails_under_ci_when_node_is_too_old(monkeypatch, tmp_path):
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\necho v12.22.12\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="older than 18"):
        require_node()


def test_ci_script_installs_debian_nodejs_when_node_is_missing():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = script.index("apt-get install -y -qq nodejs")
    assert script.index("command -v node") < install < script.index("=== leg 1:")
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
