"""The one way a test finds Node: skipped on a developer machine without it, a failure under CI.

`.ci/run` installs Debian's `nodejs` when `node` is missing, so on CI a Node test always runs
(docs/CONTRIBUTING.md, "Node tests").
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

# The worker scripts use global fetch and node:crypto's Ed25519: Node 18 has both.
NODE_MIN_MAJOR = 18


def node_unavailable_reason() -> str | None:
    """Why Node cannot run the tests here, or None when it can."""
    path = shutil.which("node")
    if path is None:
        return "node is not installed (apt-get install -y nodejs; .ci/run installs it)"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"node does not start: {exc}"
    match = re.match(r"v(\d+)\.", done.stdout.strip())
    if done.returncode != 0 or match is None:
        return f"node --version answered {done.stdout.strip() or done.stderr.strip()!r}"
    if int(match.group(1)) < NODE_MIN_MAJOR:
        return f"node {done.stdout.strip()} is older than {NODE_MIN_MAJOR}"
    return None


def require_node() -> str:
    """Return the node executable; skip the test without it, or fail it when CI is set."""
    reason = node_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Node tests: {reason}")
        pytest.skip(reason)
    path = shutil.which("node")
    assert path is not None
    return path
