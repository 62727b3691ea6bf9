"""A minimal in-memory portal behind `httpx.MockTransport`, for the worker client's unit tests.

It checks the signing of docs/API.md with its own few lines of hmac/hashlib (not the
client's code), keeps jobs, attempts, leases and idempotent reports in dicts, and records every
request so tests can look at what went over the wire. Faults are injected per path as a queue of
responses (or exceptions) served before the normal handler.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import httpx

BASE_URL = "http://portal.test"


@dataclass
class FakeJob:
    id: int
    payload: dict[str, Any]
    state: str = "queued"  # queued | leased | succeeded | failed
    attempt_id: str | None = None
    attempts: int = 0
    lease_expires_at: dt.datetime | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _error(status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message or code}}, headers=headers)


class FakePortal:
    def __init__(self, *, worker_id: str = "w-test", key_id: str = "k-1", secret: str = "s3cret-ÄØ",
                 lease_s: float = 120.0, config: dict[str, Any] | None = None) -> None:
        self.worker_id = worker_id
        self.keys = {key_id: secret}
        self.lease_s = lease_s
        self.config = {
            "config_version": 1, "poll_interval_s": 0.05, "heartbeat_interval_s": 0.1, "max_batch": 10,
            "report_chunk_leads": 200, "max_leads_per_report": 1000, "max_body_bytes": 5 * 1024 * 1024,
            "enabled_providers": ["maps"], "channel": "stable",
        }
        self.config.update(config or {})
        self.heartbeat_extra: dict[str, Any] = {}
        self.jobs: dict[int, FakeJob] = {}
        self.requests: list[Recorded] = []
        self.faults: dict[str, deque[Any]] = defaultdict(deque)
        self.receipts: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self.nonces: set[str] = set()
        self.auth_failures = 0
        self.lock = threading.RLock()
        self.transport = httpx.MockTransport(self.handle)

    # --- setup helpers -----------------------------------------------------------------------------

    def add_jobs(self, count: int, payload: dict[str, Any] | None = None) -> list[FakeJob]:
        with self.lock:
            start = len(self.jobs) + 1
            new = [FakeJob(id=start + i, payload=payload or {"query": "مطاعم", "city": "الرياض"})
                   for i in range(count)]
            self.jobs.update({job.id: job for job in new})
            return new

    def fail_next(self, path_suffix: str, *responses: Any) -> None:
        """Serve these (httpx.Response or exception instances) to the next calls ending in path_suffix."""
        self.faults[path_suffix].extend(responses)

    def calls(self, path_suffix: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- the transport -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
        body = request.read()
        with self.lock:
            self.requests.append(Recorded(request.method, raw_path, query, dict(request.headers), body))
            for suffix, queue in self.faults.items():
                if raw_path.endswith(suffix) and queue:
                    fault = queue.popleft()
                    if isinstance(fault, Exception):
                        raise fault
                    return fault
            if not self._authentic(request, raw_path, query, body):
                self.auth_failures += 1
                return _error(401, "unauthorized", "Authentication failed.")
            return self._route(request.method, raw_path, body, request.headers)

    def _authentic(self, request: httpx.Request, path: str, query: str, body: bytes) -> bool:
        headers = request.headers
        secret = self.keys.get(headers.get("x-leadops-key-id", ""))
        if secret is None or headers.get("x-leadops-worker") != self.worker_id:
            return False
        if hashlib.sha256(body).hexdigest() != headers.get("x-leadops-content-sha256"):
            return False
        canonical = "\n".join([
            "LEADOPS-HMAC-SHA256", request.method, path, query, headers["x-leadops-worker"],
            headers["x-leadops-key-id"], headers["x-leadops-timestamp"], headers["x-leadops-nonce"],
            headers["x-leadops-content-sha256"],
        ])
        expected = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
        if headers.get("authorization") != f"LEADOPS-HMAC-SHA256 Signature={expected}":
            return False
        nonce = headers["x-leadops-nonce"]
        if nonce in self.nonces:
            return False
        self.nonces.add(nonce)
        return True

    def _route(self, method: str, path: str, body: bytes, headers: httpx.Headers) -> httpx.Response:
        match = re.fullmatch(r"/api/v1/jobs/(\d+)/evidence", path)
        if method == "POST" and match:
            return self._evidence(int(match.group(1)), body, headers)
        data = json.loads(body) if body else {}
        if method == "POST" and path == "/api/v1/heartbeat":
            answer = {"server_time": _now().isoformat(), "poll_interval_s": self.config["poll_interval_s"],
                      "config_version": self.config["config_version"], **self.heartbeat_extra}
            return httpx.Response(200, json=answer)
        if method == "GET" and path == "/api/v1/config":
            return httpx.Response(200, json=self.config)
        if method == "POST" and path == "/api/v1/jobs/pull":
            return self._pull(data)
        if method == "POST" and path == "/api/v1/jobs/release":
            return self._release(data)
        match = re.fullmatch(r"/api/v1/jobs/(\d+)/(extend|report)", path)
        if method == "POST" and match:
            job = self.jobs.get(int(match.group(1)))
            if job is None:
                return _error(404, "job_not_found")
            if match.group(2) == "extend":
                return self._extend(job, data)
            return self._report(job, data, body, headers.get("idempotency-key", ""))
        return _error(404, "not_found")

    def _evidence(self, job_id: int, body: bytes, headers: httpx.Headers) -> httpx.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "job_not_found")
        if headers.get("x-leadops-attempt-id") != job.attempt_id:
            return _error(409, "attempt_superseded")
        if headers.get("content-type") not in ("image/png", "image/jpeg"):
            return _error(415, "unsupported_media_type")
        job.evidence.append((headers["content-type"], body))
        return httpx.Response(200, json={"evidence_id": str(uuid.uuid4())})

    def _lease(self, job: FakeJob) -> str:
        job.lease_expires_at = _now() + dt.timedelta(seconds=self.lease_s)
        return job.lease_expires_at.isoformat()

    def _pull(self, data: dict[str, Any]) -> httpx.Response:
        claimed = []
        for job in self.jobs.values():
            if len(claimed) >= data.get("max", 1):
                break
            if job.state == "queued":
                job.state, job.attempt_id = "leased", str(uuid.uuid4())
                job.attempts += 1
                claimed.append({"id": job.id, "attempt_id": job.attempt_id, "attempt": job.attempts,
                                "provider": "maps", "payload": job.payload, "lease_expires_at": self._lease(job)})
        return httpx.Response(200, json={"jobs": claimed, "retry_after_s": 0 if claimed else 0.05})

    def _attempt_error(self, job: FakeJob, attempt_id: str) -> httpx.Response | None:
        if job.attempt_id != attempt_id:
            return _error(409, "attempt_superseded")
        if job.state in ("succeeded", "failed"):
            return _error(409, "job_finished")
        return None

    def _extend(self, job: FakeJob, data: dict[str, Any]) -> httpx.Response:
        error = self._attempt_error(job, data["attempt_id"])
        return error or httpx.Response(200, json={"lease_expires_at": self._lease(job)})

    def _report(self, job: FakeJob, data: dict[str, Any], body: bytes, key: str) -> httpx.Response:
        if not key:
            return _error(400, "idempotency_key_required")
        if key in self.receipts:
            first_body, answer = self.receipts[key]
            if first_body != body:
                return _error(422, "idempotency_key_reused")
            return httpx.Response(200, json=answer)
        error = self._attempt_error(job, data["attempt_id"])
        if error is not None:
            return error
        job.reports.append(data)
        answer: dict[str, Any] = {"added": len(data["leads"]), "duplicates": 0, "invalid": 0}
        if data["outcome"] == "partial":
            answer.update(job_state="leased", lease_expires_at=self._lease(job))
        else:
            job.state = data["outcome"]
            answer["job_state"] = job.state
        self.receipts[key] = (body, answer)
        return httpx.Response(200, json=answer)

    def _release(self, data: dict[str, Any]) -> httpx.Response:
        wanted = data.get("attempt_ids")
        released = 0
        for job in self.jobs.values():
            if job.state == "leased" and (wanted is None or job.attempt_id in wanted):
                job.state, job.lease_expires_at = "queued", None
                job.attempts -= 1
                released += 1
        return httpx.Response(200, json={"released": released})
