"""A live portal in a subprocess on a free port, on the test database: the chosen worker-API server
(`worker_api_url`) or daphne for WebSockets and the browser monitor (`live_portal_url`); both start
through `tests/e2e/servers.py`."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from django.db import connection

from tests.e2e.servers import ASYNC, CHOSEN, free_port, server_stop, start_server

BASE_DIR = Path(__file__).resolve().parents[2]


_free_port = free_port


def _database_url() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or "postgres"
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings_dict['NAME']}"


def _portal_env(django_db_blocker, prefix: str) -> dict[str, str]:
    with django_db_blocker.unblock():
        database_url = _database_url()
    if "memory" in database_url:
        pytest.skip("the live portal needs a file or server database")
    return {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "leadops.settings",
            "LEADOPS_DB_POOL": "false", "LEADOPS_REDIS_PREFIX": prefix}


@pytest.fixture(scope="module")
def e2e_redis_prefix() -> str:
    """The Redis key space of this module's live portal: its own in a shared Redis, so limiter state
    (e.g. the failed-authentication budget of 127.0.0.1) of an earlier portal or run never leaks in."""
    return f"leadops-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _isolated_redis_keys(settings, e2e_redis_prefix):
    # Overrides the suite's per-test key space: the live portal and this test process are one
    # installation, so a change made here (a key rotation) is announced where the portal's server
    # processes look for it (docs/DEPLOY.md, "The credential copy").
    settings.LEADOPS_REDIS_PREFIX = e2e_redis_prefix


# The media folder (release artifacts, evidence) of each live portal that was given one, by base URL.
_MEDIA_ROOTS: dict[str, Path] = {}


def _serve(kind: str, django_db_blocker, prefix: str, *, media_root: Path | None = None):
    port = _free_port()
    env = _portal_env(django_db_blocker, prefix)
    if media_root is not None:
        env["LEADOPS_MEDIA_ROOT"] = str(media_root)
    try:
        server = start_server(kind, port, env)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    url = f"http://127.0.0.1:{port}"
    if media_root is not None:
        _MEDIA_ROOTS[url] = media_root
    try:
        yield url
    finally:
        _MEDIA_ROOTS.pop(url, None)
        server_stop(server)


@pytest.fixture(scope="module")
def live_portal_url(django_db_setup, django_db_blocker, e2e_redis_prefix):
    """daphne (the async server: WebSockets, SSE) on the test database, once per module; its base URL.

    For the browser and live-monitor tests; the worker API has `worker_api_url`.
    """
    yield from _serve(ASYNC, django_db_blocker, e2e_redis_prefix)


@pytest.fixture(scope="module")
def worker_api_url(django_db_setup, django_db_blocker, e2e_redis_prefix, tmp_path_factory):
    """The chosen worker-API server (`leadops.servers.CHOSEN`) on the test database; its base URL.

    Its media folder is a temporary one of its own (`worker_api_media` points the test at it).
    """
    yield from _serve(CHOSEN, django_db_blocker, e2e_redis_prefix,
                      media_root=tmp_path_factory.mktemp("worker-api-media"))


@pytest.fixture
def worker_api_media(worker_api_url, settings) -> Path:
    """Store files (release artifacts) where the `worker_api_url` server reads them; that folder."""
    media_root = _MEDIA_ROOTS[worker_api_url]
    settings.MEDIA_ROOT = str(media_root)
    return media_root


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


def admin_session(url: str, username: str, password: str) -> httpx.Client:
    """An HTTP session signed in to the admin of the portal at `url` (its own CSRF cookie)."""
    session = httpx.Client(base_url=url, timeout=20)
    page = session.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = session.post("/admin/login/", data={"csrfmiddlewaretoken": token, "username": username,
                                                 "password": password, "next": "/admin/"})
    assert answer.status_code == 302, answer.text[:500]
    return session


def admin_post(session: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    return session.post(path, data={"csrfmiddlewaretoken": session.cookies["csrftoken"], **data})


def wait_until(predicate, timeout: float = 60, interval: float = 0.2) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
