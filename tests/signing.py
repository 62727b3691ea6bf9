"""An independent implementation of the request signing of docs/API.md, for tests.

It is written from the contract, not imported from the server, so a bug in the server's canonical
string cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any


def signed_headers(*, method: str, path: str, query: str = "", body: bytes = b"", worker_id: str,
                   key_id: str, secret: str, timestamp: int | None = None,
                   nonce: str | None = None) -> dict[str, str]:
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    content_sha256 = hashlib.sha256(body).hexdigest()
    canonical = "\n".join(["LEADOPS-HMAC-SHA256", method.upper(), path, query, worker_id, key_id,
                           timestamp_text, nonce, content_sha256])
    signature = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {
        "X-LeadOps-Worker": worker_id,
        "X-LeadOps-Key-Id": key_id,
        "X-LeadOps-Timestamp": timestamp_text,
        "X-LeadOps-Nonce": nonce,
        "X-LeadOps-Content-SHA256": content_sha256,
        "Authorization": f"LEADOPS-HMAC-SHA256 Signature={signature}",
    }


class SignedClient:
    """Drives the Django test client with signed requests for one worker credential."""

    def __init__(self, client, *, worker_id: str, key_id: str, secret: str) -> None:
        self.client = client
        self.worker_id = worker_id
        self.key_id = key_id
        self.secret = secret

    def request(self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None,
                query: str = "", headers: dict[str, str] | None = None, sign_overrides: dict | None = None,
                tamper_body: bytes | None = None, tamper_query: str | None = None,
                content_type: str = "application/json"):
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        sign_args = {"method": method, "path": path, "query": query, "body": body,
                     "worker_id": self.worker_id, "key_id": self.key_id, "secret": self.secret}
        sign_args.update(sign_overrides or {})
        all_headers = signed_headers(**sign_args)
        all_headers.update(headers or {})
        sent_body = tamper_body if tamper_body is not None else body
        sent_query = tamper_query if tamper_query is not None else query
        url = path + (f"?{sent_query}" if sent_query else "")
        return self.client.generic(method, url, data=sent_body, content_type=content_type,
                                   headers=all_headers)

    def post(self, path: str, payload: Any = None, **kwargs):
        return self.request("POST", path, payload, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def pull(self, max_jobs: int = 1, **extra):
        return self.post("/api/v1/jobs/pull", {"max": max_jobs, **extra})

    def evidence(self, job_id: int, attempt_id: str, image: bytes, *, content_type: str = "image/png"):
        return self.post(f"/api/v1/jobs/{job_id}/evidence", raw=image, content_type=content_type,
                         headers={"X-LeadOps-Attempt-Id": str(attempt_id)})

    def report(self, job_id: int, payload: dict, *, key: str | None = None):
        import uuid

        return self.post(f"/api/v1/jobs/{job_id}/report", payload,
                         headers={"Idempotency-Key": key or str(uuid.uuid4())})
