"""`node --test` of the Node agent package (agents/node/), so `make test` and CI run it.

Without Node the test skips on a developer machine; under `CI=true` a missing or too old Node fails
instead (tests/node.py; docs/RELEASES.md, "The Node agent").
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.node import require_node

PACKAGE = Path(__file__).resolve().parents[1] / "agents" / "node"


def test_node_unit_tests_of_the_agent_package_pass():
    node = require_node()
    done = subprocess.run([node, "--test"], cwd=PACKAGE, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "NODE_OPTIONS": ""})
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, tail
    assert "# fail 0" in done.stdout and "# skipped 0" in done.stdout, tail
    assert "Warning" not in done.stdout + done.stderr, tail  # e.g. a listener leak in a wait


def test_the_package_has_no_npm_dependencies():
    import json

    package = json.loads((PACKAGE / "package.json").read_text())
    assert not package.get("dependencies") and not package.get("devDependencies"), package
    assert package["engines"]["node"] == ">=18"
