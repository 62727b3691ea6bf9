"""A live portal: daphne in a subprocess on a free port, on the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or "postgres"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="module")
def live_portal_url(django_db_setup, django_db_blocker):
    """Start daphne on the test database once per module; yield its base URL."""
    with django_db_blocker.unblock():
        database_url = _database_url()
    if "memory" in database_url:
        pytest.skip("the live portal needs a file or server database")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "leadops.settings",
           "LEADOPS_DB_POOL": "false",
           # Its own key space in a shared Redis: limiter state (e.g. the failed-authentication
           # budget of 127.0.0.1) of an earlier portal or run must not leak into this one.
           "LEADOPS_REDIS_PREFIX": f"leadops-e2e-{os.getpid()}-{port}"}
    log_path = BASE_DIR / "test-artifacts" / f"daphne-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "leadops.asgi:application"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"daphne exited early; see {log_path}:\n{log_path.read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/api/v1/nothing", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("daphne did not answer within 30 s")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# --- headless Debian chromium through Playwright (never a downloaded browser) --------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "storage" / "test-artifacts"


@pytest.fixture
def browser():
    """A headless chromium; skipped on a developer machine without it, a failure on CI."""
    if not Path(CHROMIUM).exists():
        message = "Debian chromium is missing: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def admin_login(browser, base_url: str, next_path: str, username: str, password: str, *, height: int = 1000):
    """Open a page, sign in to admin and land on `next_path`."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")
    return page


def wait_until(predicate, timeout: float = 60, interval: float = 0.2) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
