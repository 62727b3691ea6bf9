"""A minimal signed client of the worker protocol (docs/API.md) on `http.client`.

The bench drives the portal with the reference worker (`worker_client.LeadOpsClient`). This file
is the fallback when that package cannot be imported, and `--client mini` uses it on purpose: it
costs the client side far less CPU than httpx, which matters on a 2-core machine where the load
generator and the server share the cores. The signing is written from the spec, independently of
the project's code, so the bench also checks that the server follows the contract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import time
import uuid
from typing import Any

SCHEME = "LEADOPS-HMAC-SHA256"


class ApiError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        try:
            self.code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            self.code = "unknown"
        super().__init__(f"{status} {self.code}: {body[:300]!r}")


def sign(*, method: str, path: str, query: str, body: bytes, worker_id: str, key_id: str,
         secret: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
    body_hash = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([SCHEME, method.upper(), path, query, worker_id, key_id, timestamp, nonce, body_hash])
    signature = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {
        "X-LeadOps-Worker": worker_id, "X-LeadOps-Key-Id": key_id, "X-LeadOps-Timestamp": timestamp,
        "X-LeadOps-Nonce": nonce, "X-LeadOps-Content-SHA256": body_hash,
        "Authorization": f"{SCHEME} Signature={signature}",
    }


class MiniClient:
    """Same calls the bench uses from LeadOpsClient: pull and report (no retries: errors count)."""

    def __init__(self, base_url: str, worker_id: str, key_id: str, secret: str, timeout: float = 30.0) -> None:
        host_port = base_url.split("://", 1)[1].rstrip("/")
        host, _, port = host_port.partition(":")
        self.host, self.port, self.timeout = host, int(port or 80), timeout
        self.worker_id, self.key_id, self.secret = worker_id, key_id, secret
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        full_path = "/api/v1" + path
        all_headers = {"Content-Type": "application/json", "Accept": "application/json",
                       **sign(method=method, path=full_path, query="", body=body, worker_id=self.worker_id,
                              key_id=self.key_id, secret=self.secret),
                       **(headers or {})}
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, full_path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                # A kept-alive connection the server closed: reconnect once (new nonce: re-sign).
                self.close()
                if attempt == 2:
                    raise
                all_headers.update(sign(method=method, path=full_path, query="", body=body,
                                        worker_id=self.worker_id, key_id=self.key_id, secret=self.secret))
        if response.status >= 400:
            raise ApiError(response.status, data)
        return json.loads(data) if data else {}

    def pull(self, max: int = 1) -> dict[str, Any]:
        return self.request("POST", "/jobs/pull", {"max": max})

    def report(self, job_id: int, attempt_id: str, outcome: str, leads: list[dict[str, Any]],
               idempotency_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{int(job_id)}/report",
                            {"attempt_id": str(attempt_id), "outcome": outcome, "leads": leads},
                            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def heartbeat(self, *, version: str, status: str, running_jobs: int) -> dict[str, Any]:
        return self.request("POST", "/heartbeat", {"version": version, "status": status, "running_jobs": running_jobs})

    def exchange(self, reports: list[dict[str, Any]], max: int = 0) -> dict[str, Any]:
        return self.request("POST", "/jobs/exchange", {"reports": reports, "pull": {"max": max}})
