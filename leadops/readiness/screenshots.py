"""Screenshots of the admin pages behind each gate, for the evidence pack.

The portal is served in this process on 127.0.0.1 (a WSGI server in a thread, static files
included) and viewed in headless Chromium through Playwright, with a session of the first active
superuser that is deleted afterwards. Chromium is `LEADOPS_CHROMIUM` or `chromium` on PATH; without
one (or without Playwright) the pack says the screenshots were skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.urls import reverse
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from leadops.readiness.evidence import StepFiles
    from leadops.readiness.gates import Readiness

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class ChromiumFound:
    path: str | None
    reason: str = ""


def chromium_at_hand(configured: str) -> ChromiumFound:
    """The Chromium to use, or why there is none (a configured path wins over PATH)."""
    path = configured or shutil.which("chromium")
    if not path:
        return ChromiumFound(None, "no Chromium (set LEADOPS_CHROMIUM or put chromium on PATH)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return ChromiumFound(None, f"no executable Chromium at {path}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return ChromiumFound(None, "Playwright is not installed")
    return ChromiumFound(path)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Handler(StaticFilesHandler):
    """Django with its static files; every request closes its connection, as a server's would."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        close_old_connections()
        try:
            return super().__call__(environ, start_response)
        finally:
            close_old_connections()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Screenshots:
    def __init__(self, chromium: str) -> None:
        self.chromium = chromium
        # Screenshots that belong to no step (Admin › Readiness itself), relative to the pack.
        self.overview: list[str] = []

    def _session_key(self) -> str | None:
        user = get_user_model().objects.filter(is_active=True, is_superuser=True).order_by("pk").first()
        if user is None:
            return None
        store = import_string(f"{settings.SESSION_ENGINE}.SessionStore")()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        return str(store.session_key)

    def capture(self, *, root: Path, readiness: Readiness, records: dict[str, StepFiles]) -> str:
        """Screenshot Admin › Readiness and every gate's evidence pages; return the index's note."""
        session_key = self._session_key()
        if session_key is None:
            return "Screenshots skipped: no active superuser to view admin as."
        pages: list[tuple[str, str, str]] = [("readiness", "Admin › Readiness", reverse("leadops-readiness"))]
        for gate in readiness.gates:
            if gate.name in records:
                pages += [(gate.name, link.label, link.url) for link in gate.evidence]
        server: WSGIServer = make_server("127.0.0.1", 0, _Handler(WSGIHandler()), handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        taken = 0
        try:
            taken = self._shoot(root, f"http://127.0.0.1:{server.server_port}", session_key, pages, records)
        finally:
            server.shutdown()
            server.server_close()
            import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key).delete()
        return f"{taken} screenshot(s) of admin pages, taken with {self.chromium}."

    def _shoot(self, root: Path, base: str, session_key: str, pages: list[tuple[str, str, str]],
               records: dict[str, StepFiles]) -> int:
        from playwright.sync_api import sync_playwright

        taken = 0
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=self.chromium, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1600, "height": 900})
                context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session_key,
                                      "url": base}])
                page = context.new_page()
                # Browsers ask for a favicon the admin does not have: no 404 in the log for it.
                page.route("**/favicon.ico", lambda route: route.abort())
                for step, label, url in pages:
                    page.goto(base + url)
                    folder = step if step in records else ""
                    name = f"screenshot-{_slug(label)}.png"
                    page.screenshot(path=str(root / folder / name), full_page=True)
                    if folder:
                        records[folder].files.append(f"{folder}/{name}")
                    else:
                        self.overview.append(name)
                    taken += 1
            finally:
                browser.close()
        return taken
