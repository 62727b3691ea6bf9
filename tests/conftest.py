"""Fixtures shared by the whole suite: database vendor markers, a signed worker client, the clock shift,
a local HTTP receiver."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection


def pytest_addoption(parser):
    parser.addoption(
        "--clock-shift", type=int, default=0, metavar="DAYS",
        help="run with the wall clock moved DAYS days (negative: back) from the real now; CI runs the "
             "clock-sensitive tests a year ahead and a year back so no test depends on today's date "
             "(docs/CONTRIBUTING.md, 'Tests and the clock')")


def pytest_configure(config):
    days = config.getoption("--clock-shift")
    if days:
        # The clock keeps ticking from the shifted instant, so code that measures elapsed time still
        # sees time pass; tests that freeze or move the clock themselves nest inside this travel.
        traveller = time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=days), tick=True)
        traveller.start()
        config.stash[_clock_shift_key] = traveller


def pytest_unconfigure(config):
    traveller = config.stash.get(_clock_shift_key, None)
    if traveller is not None:
        traveller.stop()


def pytest_report_header(config):
    days = config.getoption("--clock-shift")
    if days:
        return f"clock shifted {days:+d} days: now is {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return None


_clock_shift_key = pytest.StashKey[time_machine.travel]()


def pytest_collection_modifyitems(config, items):
    # Tests that only mean something on PostgreSQL (row locks, SKIP LOCKED, concurrency) skip on
    # SQLite with that reason; on the PostgreSQL leg nothing skips them.
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://...); SQLite has no row locks")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
    # A second process runs on the real clock while this one is shifted: the two would disagree by
    # the shift. Such tests (and browser tests: chromium is such a process) run in the unshifted
    # legs only.
    if config.getoption("--clock-shift"):
        skip = pytest.mark.skip(reason="starts a process on the real clock; runs unshifted in make test")
        for item in items:
            if "real_clock" in item.keywords or "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _log_guard():
    # Every log record of the run is read for secrets and personal data (tests/log_guard.py).
    from tests import log_guard

    log_guard.attach()
    yield
    log_guard.attach()


def pytest_sessionfinish(session):
    from tests import log_guard

    leaks = log_guard.catcher.leaks
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports for it
        workeroutput["log_leaks"] = leaks
        return
    _report_leaks(session, leaks)


def pytest_testnodedown(node, error):
    leaks = getattr(node, "workeroutput", {}).get("log_leaks", [])
    _node_leaks.extend(leaks)


_node_leaks: list[str] = []


def _report_leaks(session, leaks: list[str]) -> None:
    leaks = leaks + _node_leaks
    if not leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", f"{len(leaks)} log lines hold a secret or personal data (tests/log_guard.py)",
                           red=True)
        for line in leaks[:50]:
            reporter.write_line(line)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def clock():
    """The clock frozen at a round instant near now for the whole test.

    Request it before any fixture that makes data (`signed`, `worker_and_secret`), so everything the
    test reads was made in frozen time; move it with `clock.shift(...)` or `clock.move_to(...)`.
    """
    from tests.clock import minute_start

    with time_machine.travel(minute_start(), tick=False) as traveller:
        yield traveller


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks of whatever the test does inside `with commit():`."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def worker_and_secret(db):
    from tests.factories import make_worker

    return make_worker(worker_id="w-main")


@pytest.fixture
def signed(client, worker_and_secret):
    from tests.signing import SignedClient

    _, issued = worker_and_secret
    return SignedClient(client, worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)


@pytest.fixture
def make_signed(client):
    """Signed clients for more workers: make_signed("w-2") -> SignedClient."""
    from tests.factories import make_worker
    from tests.signing import SignedClient

    def factory(worker_id: str, **kwargs):
        _, issued = make_worker(worker_id=worker_id, **kwargs)
        return SignedClient(client, worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)

    return factory


@pytest.fixture(autouse=True)
def _isolated_redis_keys(settings):
    # Each test gets its own key space in a shared Redis, so rate-limit state and nonces of one
    # test (or of an earlier run) never leak into another.
    import uuid

    settings.LEADOPS_REDIS_PREFIX = f"leadops-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True, scope="session")
def _isolated_channel_groups():
    # The Redis channel layer's groups (the live monitor's) are named once, at settings load, so the
    # per-test prefix above does not reach them: without this, a test listening to the monitor group
    # received the events of tests running in another pytest-xdist process on the same Redis. Set
    # before any layer is built (they are built on first use), so no layer is reset per test.
    import os
    import uuid

    from django.conf import settings

    config = settings.CHANNEL_LAYERS.get("default", {}).get("CONFIG")
    if config is not None and "prefix" in config:
        config["prefix"] = f"leadops-test-{os.getpid()}-{uuid.uuid4().hex[:8]}:asgi"
    yield


@pytest.fixture(autouse=True)
def _pull_reaper_just_ran():
    # The pull path reaps lapsed leases at most every LEADOPS_REAP_ON_PULL_S per process: start each
    # test as if it had just run, so a test's queries do not depend on when the previous test pulled.
    from django.utils import timezone

    from queueing.services.claim import pull_reaper, unguarded_claims

    pull_reaper.last = timezone.now()
    # Likewise the claim's choice of its one-statement form: a guard an earlier test made (a quota,
    # an open breaker) must not send this test's claims the guarded way.
    unguarded_claims.guarded_until = 0.0


@pytest.fixture(autouse=True)
def _fresh_credential_cache():
    # Credentials of a rolled-back test must never sign the next test's requests, nor its "no push
    # key waiting" hide the next test's rotation.
    from workers_mgmt.credential_cache import _forget_all

    _forget_all()
    yield
    _forget_all()


@pytest.fixture(autouse=True)
def _fresh_worker_config_cache():
    # The hot-path copy of the worker configuration lives for two seconds per process; a test's
    # rolled-back configuration must never leak into the next test through it.
    from workers_mgmt.services import worker_config_cache_clear

    worker_config_cache_clear()
    yield
    worker_config_cache_clear()


@pytest.fixture
def received():
    """The monitor events delivered (on commit) while the test runs."""
    from core import events

    got: list[dict] = []
    events.sink_register(got.append)
    yield got
    events.sink_unregister(got.append)


@pytest.fixture
def http_receiver():
    """A local HTTP server standing in for webhooks and chat services (tests/alerts/receivers.py)."""
    from tests.alerts.receivers import HttpReceiver

    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True, scope="session")
def _explained_flush():
    """A transactional test's closing flush that fails says why, and survives one deadlock.

    CI once failed a passing test in its teardown with only Django's "couldn't be flushed" (the
    PostgreSQL cause was cut from the log). The flush's TRUNCATE takes every table's strongest lock:
    PostgreSQL may pick it as a deadlock's victim against a session that is just finishing, which
    says nothing about the test. That one case is retried once; anything else fails with the cause
    and the other sessions on the test database in the message."""
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def teardown(self):
        return flush_explained(lambda: original(self))

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


def flush_explained(flush):
    """Run `flush`; again once if PostgreSQL chose it as a deadlock's victim; else fail saying why."""
    from django.core.management.base import CommandError

    try:
        return flush()
    except CommandError as exc:
        cause = exc.__cause__
        if _is_deadlock(cause):
            return flush()
        raise CommandError(f"{exc}\ncause: {cause!r}\nother sessions: {_other_sessions()}") from cause


def _is_deadlock(error: BaseException | None) -> bool:
    while error is not None:
        if getattr(error, "sqlstate", None) == "40P01":  # deadlock_detected
            return True
        error = error.__cause__
    return False


def _other_sessions() -> list[tuple]:
    if connection.vendor != "postgresql":
        return []
    from django.db import connections

    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pid, application_name, state, wait_event_type, wait_event, left(query, 120)"
                           " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return cursor.fetchall()
    except Exception as error:  # the report must not hide the flush's own error
        return [("unavailable", repr(error))]
