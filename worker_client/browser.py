"""A browser-backed provider: Playwright driving the system Chromium, beside the simulated one.

`python -m worker_client --provider browser` (docs/RELEASES.md, "The reference worker"). Each job's
payload names a `url`; the provider opens it in headless Chromium (`LEADOPS_CHROMIUM`, else
`chromium` on PATH: never a browser Playwright downloaded), and reads the businesses the page marks
up with schema.org microdata (`itemscope` of a `LocalBusiness` type or `Organization`, with
`itemprop` name, telephone, address, url, ...). What a scraper must not do is hide a failure: on a
block (HTTP 403/429/503, or a page that says captcha / access denied / unusual traffic) or a page
with no lead, it raises `ScrapeError` with a PNG screenshot of what the browser showed and the tail
of the attempt's log, which the worker uploads (`POST /jobs/{id}/evidence`) and reports (`log_tail`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Mapping
from typing import Any

from worker_client.provider import ScrapeCancelled, ScrapeError

CHROMIUM_ENV = "LEADOPS_CHROMIUM"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BLOCK_STATUSES = (403, 429, 503)
BLOCK_MARKERS = ("captcha", "access denied", "unusual traffic", "are you a robot", "you have been blocked")
LOG_TAIL_BYTES = 16 * 1024

# Read in the page: one object per business marked up with schema.org microdata.
EXTRACT_LEADS_JS = """() => {
  const types = ["LocalBusiness", "Organization", "Restaurant", "Store"];
  const scopes = [...document.querySelectorAll("[itemscope][itemtype]")]
    .filter((el) => types.some((t) => (el.getAttribute("itemtype") || "").includes(t)));
  const text = (el, prop) => {
    const found = el.querySelector(`[itemprop="${prop}"]`);
    if (!found) return null;
    const value = found.getAttribute("content") || found.getAttribute("href") || found.textContent;
    return value ? value.trim().replace(/^tel:/, "") : null;
  };
  return scopes.map((el) => ({
    name: text(el, "name"), phone: text(el, "telephone"), address: text(el, "address"),
    website: text(el, "url"), category: text(el, "category"), city: text(el, "addressLocality"),
  })).filter((lead) => lead.name || lead.phone);
}"""


def chromium_path() -> str | None:
    """The system Chromium: LEADOPS_CHROMIUM, else `chromium` (or `chromium-browser`) on PATH."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserProvider:
    """Scrapes one page per job in a Chromium of its own (Playwright's sync API is one per thread)."""

    def __init__(self, *, executable: str | None = None, timeout_s: float = 30.0) -> None:
        found = executable or chromium_path()
        if not found:
            raise RuntimeError(f"no Chromium: set {CHROMIUM_ENV} or put chromium on PATH")
        self.executable = found
        self.timeout_ms = timeout_s * 1000

    def scrape(self, payload: Mapping[str, Any], *, cancel: threading.Event | None = None
               ) -> list[dict[str, Any]]:
        url = payload.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ScrapeError("bad_payload", "the job names no http(s) url")
        if cancel is not None and cancel.is_set():
            raise ScrapeCancelled()
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright

        log: list[str] = []

        def note(line: str) -> None:
            log.append(f"{time.strftime('%H:%M:%S')} {line}")

        def tail() -> str:
            return "\n".join(log)[-LOG_TAIL_BYTES:]

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=self.executable, headless=True,
                                                 args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                note(f"open {url}")
                try:
                    response = page.goto(url, wait_until="load", timeout=self.timeout_ms)
                except PlaywrightError as exc:
                    first_line = str(exc).splitlines()[0][:300]
                    note(f"navigation failed: {first_line}")
                    raise ScrapeError("navigation_failed", first_line, log_tail=tail()) from None
                status = response.status if response is not None else None
                title = page.title()
                note(f"status {status}, title {title[:120]!r}")
                text = page.inner_text("body") if page.query_selector("body") else ""
                marker = next((m for m in BLOCK_MARKERS if m in text.lower() or m in title.lower()), None)
                if status in BLOCK_STATUSES or marker:
                    reason = f"HTTP {status}" if status in BLOCK_STATUSES else f"page says {marker!r}"
                    note(f"blocked: {reason}")
                    # What the page said, as an operator would want to read it (the portal masks
                    # phone numbers and e-mail addresses in a stored log tail).
                    note("page text: " + " ".join(text.split())[:300])
                    raise ScrapeError("blocked", f"blocked ({reason})",
                                      screenshot=page.screenshot(type="png"), log_tail=tail())
                leads = [self._lead(raw, url) for raw in page.evaluate(EXTRACT_LEADS_JS)]
                note(f"extracted {len(leads)} leads")
                if not leads:
                    raise ScrapeError("empty_page", "the page lists no business",
                                      screenshot=page.screenshot(type="png"), log_tail=tail())
                return leads
            finally:
                browser.close()

    @staticmethod
    def _lead(raw: Mapping[str, Any], url: str) -> dict[str, Any]:
        lead = {key: value for key, value in raw.items() if isinstance(value, str) and value}
        lead.setdefault("name", "")
        lead.setdefault("phone", "")
        lead["source_url"] = url
        return lead

    def close(self) -> None:
        """Nothing is kept between jobs (each scrape has its own browser)."""
