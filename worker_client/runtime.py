"""What a running reference worker knows about itself, and its line to the supervising agent.

This module is part of every release: the agent (`worker_client/agent.py`) starts a release's
entrypoint as a child process and talks to it only through what is here, so that an agent of one
version can run the code of another (docs/RELEASES.md, "The supervising agent"):

- the version the child reports comes from the `worker-manifest.json` of the release it was
  unpacked from (the folder above this package), never from a constant: a heartbeat then proves
  which code runs;
- environment variables set by the agent: `LEADOPS_AGENT_FD` (a pipe the child writes JSON lines
  to), `LEADOPS_AGENT_HOLD` (load the code, then wait for a line on stdin before taking work, so
  the agent can start the next version while the previous one drains), `LEADOPS_AGENT_SELF_TEST`
  (the self-test of this version, sent in every heartbeat) and `LEADOPS_AGENT_RUNNING_VERSION`
  (what runs while a new version self-tests);
- the events written to the pipe: `{"event": "heartbeat", "version", "update_target"}` after every
  heartbeat the portal answered, and `{"event": "stopped"}` once the worker has released its leases.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("worker_client.runtime")

MANIFEST_NAME = "worker-manifest.json"
AGENT_FD_ENV = "LEADOPS_AGENT_FD"
AGENT_HOLD_ENV = "LEADOPS_AGENT_HOLD"
AGENT_SELF_TEST_ENV = "LEADOPS_AGENT_SELF_TEST"
AGENT_RUNNING_VERSION_ENV = "LEADOPS_AGENT_RUNNING_VERSION"
# What the agent writes on the child's stdin to end the hold.
GO_LINE = "go"


def own_manifest() -> dict[str, Any] | None:
    """The `worker-manifest.json` of the release this code was unpacked from; None in a checkout."""
    path = Path(__file__).resolve().parent.parent / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("version"), str) else None


def own_version(default: str) -> str:
    """The version of the running code: its release manifest's, or `default` outside a release."""
    manifest = own_manifest()
    return str(manifest["version"]) if manifest else default


def agent_self_test() -> dict[str, Any] | None:
    """The self-test the agent ran on this version, to be carried by every heartbeat."""
    raw = os.environ.get(AGENT_SELF_TEST_ENV)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def agent_hold() -> None:
    """Under `LEADOPS_AGENT_HOLD`, wait until the agent says go (or goes away: then exit)."""
    if not os.environ.get(AGENT_HOLD_ENV):
        return
    line = sys.stdin.readline()
    if line.strip() != GO_LINE:
        raise SystemExit(0)  # the agent closed our stdin: it chose not to start this version


class AgentLink:
    """The child's end of the pipe to its agent; `on_lost` runs once when the agent is gone."""

    def __init__(self, fd: int, *, on_lost: Callable[[], None] | None = None) -> None:
        self._stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()
        self._on_lost = on_lost
        self.lost = False

    @classmethod
    def from_environment(cls, *, on_lost: Callable[[], None] | None = None) -> AgentLink | None:
        raw = os.environ.get(AGENT_FD_ENV)
        if not raw or not raw.isdigit():
            return None
        try:
            return cls(int(raw), on_lost=on_lost)
        except OSError:
            return None

    def send(self, event: str, **fields: Any) -> None:
        with self._lock:
            if self.lost:
                return
            try:
                self._stream.write(json.dumps({"event": event, **fields}) + "\n")
            except (OSError, ValueError):
                # The agent died: a worker nobody supervises must not run on beside the next agent.
                self.lost = True
                logger.warning("the supervising agent is gone; stopping")
                if self._on_lost is not None:
                    self._on_lost()

    def heartbeat(self, answer: dict[str, Any], *, version: str) -> None:
        self.send("heartbeat", version=version, update_target=answer.get("update_target"))

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                self._stream.close()
