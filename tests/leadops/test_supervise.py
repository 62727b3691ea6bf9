"""How `make run` stops its processes and names a port's holder (leadops/supervise.py), on real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from leadops.supervise import (
    Child,
    Signals,
    StopRequested,
    alive,
    descendants,
    port_owner,
    port_taken_message,
    stop_all,
)

pytestmark = pytest.mark.real_clock

# A child that ignores SIGTERM and forks a grandchild in a session of its own (out of its group).
STUBBORN = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
            "time.sleep(120)")


def test_a_child_that_ignores_sigterm_and_what_it_forked_are_killed_within_the_deadline():
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    stubborn = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not descendants(stubborn.pid):
        time.sleep(0.05)
    recorded = descendants(stubborn.pid) | {polite.pid, stubborn.pid}
    assert len(recorded) == 3

    started = time.monotonic()
    killed = stop_all([Child("polite", polite, worker=True), Child("stubborn", stubborn)], deadline_s=3)
    assert time.monotonic() - started < 3.5
    assert killed == ["stubborn"]
    time.sleep(0.2)
    assert not any(alive(pid) for pid in recorded)


def test_the_first_signal_stops_and_a_second_never_interrupts_the_stop():
    signals = Signals()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    signals.install()
    try:
        with pytest.raises(StopRequested):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # make forwards a second one: ignored
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
    assert signals.received == [signal.SIGTERM, signal.SIGTERM, signal.SIGINT]


def test_a_taken_port_is_named_by_its_holder():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_owner(port).startswith(f"pid {os.getpid()} (")
        assert f"port {port} is in use by pid {os.getpid()}" in port_taken_message("127.0.0.1", port)
    assert port_taken_message("127.0.0.1", port) is None
