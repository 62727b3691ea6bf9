"""The browser-backed provider: the reference worker drives the system Chromium through Playwright.

Pages are served by the test itself on 127.0.0.1 (a listing marked up with schema.org microdata, a
"blocked" page answered with 403); the worker pulls the jobs from the live worker-API server, extracts
the listing's leads, and on the blocked page uploads the screenshot as evidence and reports the
attempt's log tail, which the portal stores masked. docs/RELEASES.md, "The reference worker".
"""

from __future__ import annotations

import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from ingestion.models import Lead
from queueing.models import AttemptEvidence, AttemptState, JobAttempt
from tests.e2e.conftest import wait_until
from tests.factories import make_jobs, make_provider, make_worker
from worker_client.browser import BrowserProvider, chromium_path
from worker_client.client import LeadOpsClient
from worker_client.worker import Worker as ReferenceWorker

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LISTING = """<!doctype html><html lang="ar"><head><meta charset="utf-8"><title>Cafes in Riyadh</title></head>
<body><h1>Cafes</h1>
<div itemscope itemtype="https://schema.org/CafeOrCoffeeShop https://schema.org/LocalBusiness">
  <h2 itemprop="name">مقهى الورد</h2><a itemprop="telephone" href="tel:+966112345678">011 234 5678</a>
  <span itemprop="address">Olaya St, Riyadh</span></div>
<div itemscope itemtype="https://schema.org/LocalBusiness">
  <h2 itemprop="name">Brew Lab</h2><span itemprop="telephone">0551234567</span>
  <a itemprop="url" href="https://brewlab.example">site</a></div>
<div itemscope itemtype="https://schema.org/LocalBusiness">
  <h2 itemprop="name">Najd Roasters</h2><span itemprop="telephone">٠٥٠٩٨٧٦٥٤٣</span></div>
</body></html>"""
BLOCKED = """<!doctype html><html><head><title>Access denied</title></head>
<body><h1>Access denied</h1><p>Unusual traffic from your network. Support: 0501234567</p></body></html>"""


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {"/listing": (200, LISTING), "/blocked": (403, BLOCKED)}.get(self.path, (404, "no"))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def pages():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def chromium() -> str:
    found = chromium_path() or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if not found:
        message = "no Chromium: apt-get install -y chromium, or set LEADOPS_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_browser_provider_extracts_leads_and_keeps_evidence_of_a_block(worker_api_url, worker_api_media,
                                                                       pages, chromium):
    provider = make_provider("browser-maps")
    (listing_job,) = make_jobs(1, provider=provider, payload={"url": f"{pages}/listing"})
    (blocked_job,) = make_jobs(1, provider=provider, payload={"url": f"{pages}/blocked"})
    _, issued = make_worker(worker_id="browser-w", rate_limit_per_min=100_000)
    client = LeadOpsClient(worker_api_url, issued.worker_id, issued.key_id, issued.secret)
    worker = ReferenceWorker(client, BrowserProvider(executable=chromium), concurrency=1, batch=1)
    worker.start()
    try:
        finished = JobAttempt.objects.filter(job__in=[listing_job, blocked_job],
                                             state__in=[AttemptState.SUCCEEDED, AttemptState.FAILED])
        assert wait_until(lambda: finished.count() == 2, timeout=120), worker.last_error
    finally:
        worker.stop(timeout=60)
        client.close()

    leads = Lead.objects.filter(job_id=listing_job.pk)
    assert sorted(leads.values_list("name", flat=True)) == ["Brew Lab", "Najd Roasters", "مقهى الورد"]
    assert set(leads.values_list("phone_e164", flat=True)) == {"+966112345678", "+966551234567", "+966509876543"}
    assert set(leads.values_list("source_url", flat=True)) == {f"{pages}/listing"}

    attempt = JobAttempt.objects.get(job=blocked_job)
    assert attempt.state == AttemptState.FAILED and attempt.error["code"] == "blocked"
    evidence = AttemptEvidence.objects.get(attempt=attempt)
    image = Image.open(io.BytesIO((worker_api_media / evidence.storage_name).read_bytes()))
    image.load()  # decodes the whole PNG
    assert (image.format, image.size) == ("PNG", (evidence.width, evidence.height))
    assert f"open {pages}/blocked" in attempt.log_tail and "blocked: HTTP 403" in attempt.log_tail
    # The page's phone number reached the log tail masked, never as it was.
    assert "Support: +9665****4567" in attempt.log_tail and "0501234567" not in attempt.log_tail
    assert worker.counters.evidence_sent == 1
