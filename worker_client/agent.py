"""The supervising agent: runs the installed release as a child process and switches it when told.

    python -m worker_client.agent --url URL --install-dir DIR --trust-key KEYID:BASE64
        (--credentials-file F | --worker-id ID --key-id K | --enroll-token T) [...] -- [worker options]

What it does (docs/RELEASES.md, "The supervising agent"):

- it runs the entrypoint of the version it installed (`versions/<version>/`, with the interpreter the
  agent runs on) as a child process, and hands it the worker options after `--`;
- the child heartbeats and tells the agent each answer over a pipe (worker_client/runtime.py); when
  the answer's `update_target` names another version than the one running, and on the fallback
  interval, the agent asks `/updates/check`, verifies, downloads and unpacks like the in-process
  updater (worker_client/updater.py), then launches the new version in self-test mode (it loads its
  code, signs one heartbeat carrying `self_test` and exits 0); only a version that passes is installed;
- it switches gracefully: the new version is started and held while the old one stops taking work,
  finishes or releases its leases (`POST /jobs/release`) and exits; then the new one goes;
- a version that crashes more than `--crash-limit` times within `--crash-window` seconds after the
  switch is replaced by the last good version and reported `rolled_back` with the reason, and that
  artifact is not started again by this agent for `--quarantine` seconds.

Its own state (what runs, the last good version, self-tests, crashes, quarantined versions) is
`agent.json` in the install folder, written atomically, so a restarted agent resumes where it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker_client.client import LeadOpsClient
from worker_client.errors import ClientError
from worker_client.files import write_atomically
from worker_client.runtime import (
    AGENT_FD_ENV,
    AGENT_HOLD_ENV,
    AGENT_RUNNING_VERSION_ENV,
    AGENT_SELF_TEST_ENV,
    GO_LINE,
    MANIFEST_NAME,
)
from worker_client.updater import Updater, default_self_test, trusted_keys_from

logger = logging.getLogger("worker_client.agent")

AGENT_VERSION = "1"
STATE_NAME = "agent.json"
NOTHING_RUNS = "none"
# While nothing is installed (the channel has no release yet, the portal is down), ask this often.
BOOTSTRAP_RETRY_S = 10.0
MAX_RESTART_BACKOFF_S = 30.0


@dataclass
class AgentSettings:
    crash_limit: int = 3
    crash_window_s: float = 120.0
    stop_timeout_s: float = 60.0
    self_test_timeout_s: float = 60.0
    quarantine_s: float = 3600.0
    # None: the portal's `update_check_interval_s` (GET /config).
    check_interval_s: float | None = None


@dataclass
class AgentState:
    """What the agent keeps across its own restarts (`agent.json`, written atomically)."""

    running: str | None = None
    last_good: str | None = None
    switched_at: float | None = None  # unix time of the last switch (or rollback)
    crashes: list[float] = field(default_factory=list)  # unix times of crashes since the switch
    self_tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    quarantine: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> AgentState:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        state = cls()
        for name in ("running", "last_good"):
            if isinstance(raw.get(name), str):
                setattr(state, name, raw[name])
        if isinstance(raw.get("switched_at"), (int, float)):
            state.switched_at = float(raw["switched_at"])
        state.crashes = [float(t) for t in raw.get("crashes") or [] if isinstance(t, (int, float))]
        for name in ("self_tests", "quarantine"):
            value = raw.get(name)
            if isinstance(value, dict):
                setattr(state, name, {k: v for k, v in value.items() if isinstance(v, dict)})
        return state

    def save(self, path: Path) -> None:
        state = {"running": self.running, "last_good": self.last_good, "switched_at": self.switched_at,
                 "crashes": self.crashes, "self_tests": self.self_tests, "quarantine": self.quarantine}
        write_atomically(path, json.dumps(state, indent=1))

    def crash_loop(self, *, limit: int, window_s: float) -> bool:
        """More than `limit` crashes within `window_s` seconds after the switch."""
        if self.switched_at is None:
            return False
        recent = [t for t in self.crashes if t - self.switched_at <= window_s]
        return len(recent) > limit


@dataclass
class Child:
    """One running version: its process and what the agent has heard of it."""

    version: str
    process: subprocess.Popen[str]
    reader: Any
    started_at: float = field(default_factory=time.monotonic)
    stop_requested: bool = False
    heartbeats: int = 0
    # Set when the child says it released its leases and sent its last heartbeat (or when it exited).
    stopped: threading.Event = field(default_factory=threading.Event)

    def go(self) -> bool:
        """End the hold: the child starts taking work. False when it is already gone."""
        if self.process.poll() is not None or self.process.stdin is None:
            return False
        try:
            self.process.stdin.write(GO_LINE + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True


def release_entrypoint(folder: Path) -> Path:
    """The entrypoint a release's manifest names, inside its folder."""
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entry = (folder / str(manifest["entrypoint"])).resolve()
    if folder.resolve() not in entry.parents:
        raise ValueError("the entrypoint lies outside the release folder")
    return entry


class Agent:
    """Supervises one worker's child process on one install folder; `run()` blocks until `stop()`."""

    def __init__(self, client: LeadOpsClient, *, root: Path, trusted_keys: Mapping[str, bytes],
                 credentials_file: Path, worker_args: Sequence[str] = (),
                 settings: AgentSettings | None = None, python: str = sys.executable) -> None:
        self.client = client
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.credentials_file = credentials_file
        self.worker_args = list(worker_args)
        self.settings = settings or AgentSettings()
        self.python = python
        self.state_path = self.root / STATE_NAME
        self.state = AgentState.load(self.state_path)
        self.updater = Updater(client, root=self.root, trusted_keys=trusted_keys,
                               current_version=self.state.running or NOTHING_RUNS, self_test=self._self_test,
                               reporter=self._report_queue)
        # What runs is what the agent says (its state is written last at a switch), whatever the
        # updater's own state.json remembers.
        self.updater.current_version = self.state.running or NOTHING_RUNS
        # Stage reports go out in order on a thread of their own: a switch never waits for them.
        self.reports: queue.Queue[tuple[str, str, bool, dict[str, Any]] | None] = queue.Queue()
        self._reporter = threading.Thread(target=self._reports_send, name="agent-reports", daemon=True)
        self.child: Child | None = None
        # A version started and held (code loaded, configuration read): the next version while the
        # switch to it is prepared, else the last good version as a warm standby, so that a switch
        # or a rollback waits for no interpreter start-up.
        self.held: Child | None = None
        self._triggered = False
        self._triggered_at: float | None = None
        self.events: queue.Queue[tuple[str, Child | None, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._check_interval_s = self.settings.check_interval_s or 300.0
        self._next_check = 0.0
        # The heartbeat's last `update_target` as (version, sequence), and the one the latest check
        # started from: a target tried (and refused) is asked for again on the interval, or at once
        # when the portal names another one, not on every heartbeat.
        self._target_seen: tuple[str, Any] | None = None
        self._target_checked: tuple[str, Any] | None = None
        self._restart_at: float | None = None
        self._credentials_mtime: float | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the current step (safe from a signal handler: it only sets an event)."""
        self._stop.set()

    def run(self) -> None:
        self._reporter.start()
        self._config_refresh()
        running = self.state.running
        if running and (self.root / "versions" / running).is_dir():
            self._child_start(running)
        else:
            # Nothing (usable) installed: the first check installs what the portal assigns.
            self.state.running = None
            self.updater.current_set(NOTHING_RUNS, last_good=self.state.last_good)
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception:
                    # The agent is what brings a broken machine back; nothing may end its loop.
                    logger.exception("agent step failed")
                    self._stop.wait(1.0)
        finally:
            self._held_discard()
            if self.child is not None:
                self._child_stop(self.child)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.child.process.wait(timeout=10)
                self.child = None
            self.reports.put(None)
            self._reporter.join(timeout=30)

    def _step(self) -> None:
        now = time.monotonic()
        deadlines = [self._next_check]
        if self._restart_at is not None:
            deadlines.append(self._restart_at)
        try:
            # At most half a second, so a stop() from a signal handler is seen promptly.
            kind, child, payload = self.events.get(timeout=min(0.5, max(0.0, min(deadlines) - now)))
        except queue.Empty:
            kind, child, payload = "tick", None, None
        if kind == "message" and child is not None and child is self.child:
            self._message(child, payload)
        elif kind == "exited" and child is self.child and child is not None and not child.stop_requested:
            self._crashed(child, payload)
        if self._stop.is_set():
            return
        now = time.monotonic()
        if self._restart_at is not None and now >= self._restart_at and self.state.running:
            self._restart_at = None
            self._child_start(self.state.running)
        if now >= self._next_check:
            self._update()
        self._probation_check()

    # --- messages from the child ---------------------------------------------------------------------

    def _message(self, child: Child, message: Any) -> None:
        if not isinstance(message, dict) or message.get("event") != "heartbeat":
            return
        child.heartbeats += 1
        if child.heartbeats == 1:
            self._standby_prepare()
        target = message.get("update_target")
        if not isinstance(target, dict) or not isinstance(target.get("version"), str):
            return
        key = (target["version"], target.get("sequence"))
        self._target_seen = key
        if key[0] == self.state.running or key == self._target_checked:
            return
        if self._quarantined(key[0]) is not None:
            return  # a version that failed here; asked again on the interval only
        self._next_check = 0.0
        self._triggered = True
        self._triggered_at = time.monotonic()

    # --- updates -------------------------------------------------------------------------------------

    def _update(self) -> None:
        self._next_check = time.monotonic() + (self._check_interval_s if self.state.running
                                               else min(self._check_interval_s, BOOTSTRAP_RETRY_S))
        self._credentials_refresh()
        self._target_checked = self._target_seen
        triggered, self._triggered = self._triggered, False
        try:
            if not triggered:  # a heartbeat's target is acted on at once; the interval rereads the config
                self._config_refresh()
            entry, outcome = self.updater.assigned()
        except ClientError as exc:
            logger.warning("update check failed: %s", exc)
            self._target_checked = None
            return
        if entry is None:
            return
        version = str(entry["version"])
        quarantined = self._quarantined(version)
        if quarantined is not None and quarantined.get("sha256") == entry.get("sha256"):
            logger.info("not installing %s again: %s", version, quarantined.get("reason"))
            return
        if self.updater.kept(entry):
            # Going back to a kept folder (a rollback): start it held at once.
            self._held_prepare(version)
        outcome = self.updater.install(entry)
        if outcome.action == "installed":
            self._switch(version)
            return
        if self.held is not None and self.held.version == version:
            self._held_discard()
            self._standby_prepare()
        if outcome.action == "rolled_back":
            self._quarantine(version, str(entry.get("sha256")), "self_test failed")

    def _self_test(self, folder: Path, version: str) -> tuple[bool, dict[str, Any]]:
        """The folder is complete, and the version's code starts and signs one heartbeat."""
        ok, details = default_self_test(folder, version)
        if not ok:
            return ok, details
        needs = json.loads((folder / MANIFEST_NAME).read_text()).get("min_agent")
        if isinstance(needs, str) and needs.isdigit() and int(needs) > int(AGENT_VERSION):
            return False, {"error": f"needs agent {needs}, this agent is {AGENT_VERSION}"}
        # Start the next version held now, in parallel with its launch self-test: its start-up
        # then costs no time when the switch comes (it is discarded if the self-test fails).
        self._held_prepare(version)
        known = self.state.self_tests.get(version)
        if version == self.state.last_good and known and known.get("ok"):
            # It ran well here before and its folder is the one it ran from: no launch needed.
            return True, {**{k: v for k, v in known.items() if k not in ("version", "ok")}, "kept": True}
        env = {**os.environ, AGENT_RUNNING_VERSION_ENV: self.state.running or version}
        for name in (AGENT_FD_ENV, AGENT_HOLD_ENV, AGENT_SELF_TEST_ENV):
            env.pop(name, None)
        started = time.monotonic()
        result: dict[str, Any]
        try:
            command = [self.python, str(release_entrypoint(folder)), "--self-test", *self._child_args()]
            finished = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                                      timeout=self.settings.self_test_timeout_s, check=False)
        except subprocess.TimeoutExpired:
            result = {"mode": "launch", "error": f"no exit within {self.settings.self_test_timeout_s:.0f} s"}
            ok = False
        except (OSError, ValueError, KeyError) as exc:
            result = {"mode": "launch", "error": f"{type(exc).__name__}: {exc}"[:300]}
            ok = False
        else:
            ok = finished.returncode == 0
            result = {"mode": "launch", "exit_code": finished.returncode,
                      "seconds": round(time.monotonic() - started, 2)}
            if not ok:
                result["output"] = (finished.stderr or finished.stdout)[-500:]
        self.state.self_tests[version] = {"version": version, "ok": ok, **result}
        self._state_save()
        return ok, result

    # --- switching -----------------------------------------------------------------------------------

    def _switch(self, version: str) -> None:
        """Start `version` held, stop the old child gracefully, then let the new one go."""
        old = self.child
        if old is not None and old.heartbeats and not self._crash_looping():
            # It ran and heartbeated without crash-looping: the version to come back to.
            self.state.last_good = old.version
        new = self.held if self.held is not None and self.held.version == version else None
        self.held = None
        if new is None or new.process.poll() is not None:
            new = self._child_spawn(version, hold=True)
        stopping = time.monotonic()
        if old is not None:
            self._child_stop(old)
        self.child = new
        self.state.running = version
        self.state.switched_at = time.time()
        self.state.crashes = []
        self._restart_at = None
        self._state_save()
        self.updater.current_set(version, last_good=self.state.last_good)
        now = time.monotonic()
        logger.info("switched to %s: %.2f s after the heartbeat named it, %.2f s of it to stop the "
                    "previous one",
                    version, now - (self._triggered_at or now), now - stopping)
        self._triggered_at = None
        new.go()  # a child that died while held is seen as a crash by its waiter thread

    def _crashed(self, child: Child, returncode: Any) -> None:
        logger.warning("version %s exited with %s", child.version, returncode)
        self.child = None
        self._leases_release()
        self.state.crashes.append(time.time())
        self._state_save()
        good = self.state.last_good
        if self._crash_looping() and good and good != child.version \
                and (self.root / "versions" / good).is_dir():
            self._rollback(child.version, good, returncode)
            return
        attempt = len(self.state.crashes)
        self._restart_at = time.monotonic() + min(MAX_RESTART_BACKOFF_S, 0.25 * 2 ** (attempt - 1))

    def _crash_looping(self) -> bool:
        return self.state.crash_loop(limit=self.settings.crash_limit, window_s=self.settings.crash_window_s)

    def _rollback(self, bad: str, good: str, returncode: Any) -> None:
        crashes = len(self.state.crashes)
        reason = (f"crash loop: exited {crashes} times within {self.settings.crash_window_s:.0f} s "
                  f"after the switch (last exit code {returncode})")
        logger.error("rolling back from %s to %s: %s", bad, good, reason)
        self._quarantine(bad, self.updater.unpacked.get(bad), reason)
        self.updater.report(bad, "rolled_back", True, {"to_version": good, "reason": reason,
                                                       "crashes": crashes, "exit_code": returncode})
        self.state.running = good
        self.state.switched_at = time.time()
        self.state.crashes = []
        self._state_save()
        self.updater.current_set(good, last_good=good)
        self._target_checked = None
        self._child_start(good)

    def _probation_check(self) -> None:
        """A version that heartbeated through the crash window after its switch is the last good one."""
        child, state = self.child, self.state
        if child is None or not child.heartbeats or state.switched_at is None:
            return
        if state.running == state.last_good:
            return
        if time.time() - state.switched_at >= self.settings.crash_window_s and not self._crash_looping():
            state.last_good = state.running
            self._state_save()

    def _quarantine(self, version: str, sha256: str | None, reason: str) -> None:
        self.state.quarantine[version] = {"sha256": sha256, "reason": reason, "at": time.time()}
        self._state_save()

    def _quarantined(self, version: str) -> dict[str, Any] | None:
        entry = self.state.quarantine.get(version)
        if entry is None:
            return None
        if time.time() - float(entry.get("at", 0)) > self.settings.quarantine_s:
            return None
        return entry

    # --- child processes -----------------------------------------------------------------------------

    def _child_args(self) -> list[str]:
        return ["--url", self.client.base_url, "--credentials-file", str(self.credentials_file),
                *self.worker_args]

    def _child_start(self, version: str) -> None:
        held, self.held = self.held, None
        if held is not None and held.version == version and held.go():
            self.child = held
        else:
            if held is not None:
                self.held = held
                self._held_discard()
            self.child = self._child_spawn(version, hold=False)
        logger.info("started %s (pid %s)", version, self.child.process.pid)

    def _standby_prepare(self) -> None:
        """Keep the last good version held ready while a newer one runs: a rollback is then instant."""
        good = self.state.last_good
        if good and good != self.state.running and (self.root / "versions" / good).is_dir():
            self._held_prepare(good)

    def _child_spawn(self, version: str, *, hold: bool) -> Child:
        folder = self.root / "versions" / version
        read_end, write_end = os.pipe()
        env = {**os.environ, AGENT_FD_ENV: str(write_end)}
        env.pop(AGENT_RUNNING_VERSION_ENV, None)
        if hold:
            env[AGENT_HOLD_ENV] = "1"
        else:
            env.pop(AGENT_HOLD_ENV, None)
        self_test = self.state.self_tests.get(version)
        if self_test is not None:
            env[AGENT_SELF_TEST_ENV] = json.dumps(self_test)
        else:
            env.pop(AGENT_SELF_TEST_ENV, None)
        try:
            process = subprocess.Popen([self.python, str(release_entrypoint(folder)), *self._child_args()],
                                       cwd=folder, env=env, pass_fds=(write_end,), stdin=subprocess.PIPE,
                                       text=True)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        reader = os.fdopen(read_end, "r", encoding="utf-8")
        child = Child(version=version, process=process, reader=reader)
        threading.Thread(target=self._child_read, args=(child,), daemon=True,
                         name=f"agent-read-{process.pid}").start()
        threading.Thread(target=self._child_wait, args=(child,), daemon=True,
                         name=f"agent-wait-{process.pid}").start()
        return child

    def _held_prepare(self, version: str) -> None:
        if self.held is not None and self.held.version == version and self.held.process.poll() is None:
            return
        self._held_discard()
        try:
            self.held = self._child_spawn(version, hold=True)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("could not start %s held: %s", version, exc)

    def _held_discard(self) -> None:
        """Close the held child's stdin: it exits without having taken any work."""
        held, self.held = self.held, None
        if held is None:
            return
        held.stop_requested = True
        with contextlib.suppress(OSError, ValueError):
            if held.process.stdin is not None:
                held.process.stdin.close()

    def _child_read(self, child: Child) -> None:
        with contextlib.suppress(OSError, ValueError), child.reader:
            for line in child.reader:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("event") == "stopped":
                    child.stopped.set()
                self.events.put(("message", child, message))

    def _child_wait(self, child: Child) -> None:
        returncode = child.process.wait()
        child.stopped.set()
        self.events.put(("exited", child, returncode))

    def _child_stop(self, child: Child) -> None:
        """SIGTERM: the child stops taking work, reports or releases its leases and exits."""
        child.stop_requested = True
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
            # Its work is handed back once it says so; the interpreter's own exit need not be waited for.
            if not child.stopped.wait(timeout=self.settings.stop_timeout_s):
                logger.error("version %s did not stop within %.0f s; killing it", child.version,
                             self.settings.stop_timeout_s)
                child.process.kill()
                child.process.wait()
                self._leases_release()
        with contextlib.suppress(OSError):
            if child.process.stdin is not None:
                child.process.stdin.close()

    def _report_queue(self, version: str, stage: str, ok: bool, details: dict[str, Any]) -> None:
        self.reports.put((version, stage, ok, details))

    def _reports_send(self) -> None:
        while (item := self.reports.get()) is not None:
            self._credentials_refresh()
            self.updater.report_send(*item)

    def _leases_release(self) -> None:
        """Give back every lease of this worker: no child runs now, so none of them is being worked on."""
        self._credentials_refresh()
        try:
            answer = self.client.release()
        except ClientError as exc:
            logger.warning("could not release the leases: %s", exc)
            return
        if answer.get("released"):
            logger.info("released %s leases", answer["released"])

    # --- portal and files ----------------------------------------------------------------------------

    def _config_refresh(self) -> None:
        try:
            config = self.client.config()
        except ClientError as exc:
            logger.warning("GET /config failed: %s", exc)
            return
        self.updater.channel_follow(config)
        interval = config.get("update_check_interval_s")
        if self.settings.check_interval_s is None and isinstance(interval, (int, float)) and interval > 0:
            self._check_interval_s = float(interval)

    def _credentials_refresh(self) -> None:
        """Sign with the key the child stored last (a key pushed to it by a heartbeat)."""
        try:
            mtime = self.credentials_file.stat().st_mtime
            if mtime == self._credentials_mtime:
                return
            stored = json.loads(self.credentials_file.read_text())
        except (OSError, ValueError):
            return
        self._credentials_mtime = mtime
        usable = isinstance(stored, dict) and stored.get("key_id") and stored.get("secret")
        if usable and stored["key_id"] != self.client.key_id:
            self.client.use_credentials(str(stored["key_id"]), str(stored["secret"]))

    def _state_save(self) -> None:
        self.state.save(self.state_path)


# --- command line ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker_client.agent",
        description="Run the installed worker release, update it when the portal says, roll it back when "
                    "it fails. Worker options go after `--`.")
    parser.add_argument("--url", required=True, help="Portal base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--install-dir", type=Path, required=True,
                        help="versions/<version>/, downloads/, state files and (by default) "
                             "credentials.json.")
    parser.add_argument("--trust-key", action="append", default=[], metavar="KEYID:BASE64", required=True,
                        help="A manifest key to trust (manage.py signing_public_key); repeat during a "
                             "rotation.")
    parser.add_argument("--credentials-file", type=Path, default=None,
                        help="JSON {worker_id, key_id, secret}, shared with the child (which stores pushed "
                             "keys there); default: <install-dir>/credentials.json.")
    parser.add_argument("--worker-id")
    parser.add_argument("--key-id")
    parser.add_argument("--secret", help="Prefer the LEADOPS_WORKER_SECRET environment variable.")
    parser.add_argument("--enroll-token", help="One-time enrollment token (or LEADOPS_ENROLLMENT_TOKEN).")
    parser.add_argument("--crash-limit", type=int, default=3,
                        help="Roll back after more than this many crashes ...")
    parser.add_argument("--crash-window", type=float, default=120.0,
                        help="... within this many seconds after a switch (also the probation of a new "
                             "version).")
    parser.add_argument("--stop-timeout", type=float, default=60.0,
                        help="Seconds a stopping version may take to finish or release its leases.")
    parser.add_argument("--self-test-timeout", type=float, default=60.0)
    parser.add_argument("--quarantine", type=float, default=3600.0,
                        help="Seconds a version that failed here is not started again.")
    parser.add_argument("--check-interval", type=float, default=None,
                        help="Fallback update check interval (default: the portal's "
                             "update_check_interval_s).")
    parser.add_argument("--log-level", default="INFO")
    return parser


def credentials_prepare(args: argparse.Namespace) -> tuple[Path, str, str, str]:
    """The credentials file the agent and its child share, written from the options when needed."""
    from worker_client.__main__ import ENROLLMENT_TOKEN_ENV, SECRET_ENV, credentials_writer, enroll_into

    path: Path = args.credentials_file or args.install_dir / "credentials.json"
    token = args.enroll_token or os.environ.get(ENROLLMENT_TOKEN_ENV)
    if token and not path.exists():
        enroll_into(args.url, token, path)
    secret = args.secret or os.environ.get(SECRET_ENV)
    if args.worker_id and args.key_id and secret:
        stored = json.loads(path.read_text()) if path.exists() else {}
        if stored.get("key_id") != args.key_id:
            credentials_writer(path, worker_id=args.worker_id)(args.key_id, secret)
    try:
        stored = json.loads(path.read_text())
        worker_id = args.worker_id or stored["worker_id"]
        return path, worker_id, stored["key_id"], stored["secret"]
    except (OSError, ValueError, KeyError):
        raise SystemExit("error: give --credentials-file (with worker_id), or --worker-id, --key-id and the "
                         f"secret ({SECRET_ENV}), or --enroll-token") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    worker_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, worker_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s agent %(name)s %(message)s")
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        trusted = trusted_keys_from(dict(entry.split(":", 1) for entry in args.trust_key))
    except ValueError as exc:
        raise SystemExit(f"error: --trust-key: {exc}") from None
    if args.crash_limit < 0 or args.crash_window <= 0:
        raise SystemExit("error: --crash-limit must be >= 0 and --crash-window > 0")
    args.install_dir.mkdir(parents=True, exist_ok=True)
    credentials_file, worker_id, key_id, secret = credentials_prepare(args)
    settings = AgentSettings(crash_limit=args.crash_limit, crash_window_s=args.crash_window,
                             stop_timeout_s=args.stop_timeout, self_test_timeout_s=args.self_test_timeout,
                             quarantine_s=args.quarantine, check_interval_s=args.check_interval)
    with LeadOpsClient(args.url, worker_id, key_id, secret) as client:
        agent = Agent(client, root=args.install_dir, trusted_keys=trusted, credentials_file=credentials_file,
                      worker_args=worker_args, settings=settings)
        signal.signal(signal.SIGTERM, lambda *_: agent.stop())
        signal.signal(signal.SIGINT, lambda *_: agent.stop())
        agent.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
