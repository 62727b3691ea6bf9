"""A signed HTTP client for the worker protocol v1 (docs/API.md), on one `httpx.Client`.

Every call serializes its JSON body once and signs exactly those bytes, so the body hash the server
computes always matches. Network errors, 5xx and 429 are retried with exponential backoff and
jitter (429 and 503 wait what `Retry-After` says); every try is signed again, because the server
refuses a nonce it has already seen. A report resends the same bytes under the same
Idempotency-Key, which is what lets the server answer a retried report without counting it twice.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker_client.cancel import PollCancel, active_cancel, cancellable, poll_scope
from worker_client.errors import (
    ProtocolError,
    RateLimited,
    ServerError,
    TransportFailure,
    error_from_response,
)
from worker_client.signing import sign_request

logger = logging.getLogger("worker_client")

API_PREFIX = "/api/v1"
USER_AGENT = "leadops-worker-client/0.1 (python)"

CredentialsCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one call tries before its error reaches the caller."""

    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    # A Retry-After beyond this is treated as this long: a worker should come back eventually
    # even when a proxy answers with an absurd value.
    max_retry_after_s: float = 300.0

    def backoff_s(self, retry_number: int, rng: random.Random) -> float:
        """Equal-jitter exponential backoff, the same shape as the server's job backoff."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (retry_number - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class ClientStats:
    """Request counters, safe to read from another thread."""

    requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, failed_requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.failed_requests += failed_requests
            self.retries += retries

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "failed_requests": self.failed_requests,
                    "retries": self.retries}


@dataclass(frozen=True)
class _Credentials:
    key_id: str
    secret: str = field(repr=False)


def encode_json(payload: Any) -> bytes:
    """The one JSON encoding of request bodies: compact UTF-8, no NaN (which is not JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def parse_timestamp(value: str) -> dt.datetime:
    """An ISO 8601 time from the server as an aware datetime (naive values are taken as UTC)."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def enroll(base_url: str, token: str, *, timeout: float = 15.0,
           transport: httpx.BaseTransport | None = None) -> dict[str, str]:
    """POST /enroll (unsigned): spend a one-time enrollment token; return {worker_id, key_id, secret}.

    Not retried: the token works once, and a lost answer means staff issue a new token.
    """
    body = encode_json({"token": token})
    with httpx.Client(timeout=timeout, transport=transport,
                      headers={"User-Agent": USER_AGENT, "Accept": "application/json"}) as http:
        try:
            response = http.post(f"{base_url.rstrip('/')}{API_PREFIX}/enroll", content=body,
                                 headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:
            raise TransportFailure(f"POST /enroll: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise error_from_response(response.status_code, response.content,
                                  retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
    answer = _json_object(response)
    names = ("worker_id", "key_id", "secret")
    if not all(isinstance(answer.get(name), str) and answer[name] for name in names):
        raise ProtocolError(response.status_code, "invalid_response", "The enroll answer lacks a credential.")
    return {"worker_id": answer["worker_id"], "key_id": answer["key_id"], "secret": answer["secret"]}


class LeadOpsClient:
    """One worker's signed connection to the portal."""

    def __init__(
        self, base_url: str, worker_id: str, key_id: str, secret: str, *, timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None, retry: RetryPolicy | None = None,
        on_credentials: CredentialsCallback | None = None, sleep: Callable[[float], Any] = time.sleep,
        rng: random.Random | None = None, user_agent: str = USER_AGENT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.worker_id = worker_id
        self.retry = retry or RetryPolicy()
        self.stats = ClientStats()
        self._credentials = _Credentials(key_id=key_id, secret=secret)
        self._credentials_lock = threading.Lock()
        self._on_credentials = on_credentials
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock_offset_s = 0.0
        # time.monotonic() of the last answered signed call: the server counts any as a sign of life
        # (docs/API.md, "Liveness"), so the worker skips heartbeats it does not need.
        self.last_answered_at: float | None = None
        # ... and of the last answer that carried what a heartbeat answers (`update_target`): a
        # heartbeat's, or a pull's or exchange's that stood in for one.
        self.last_standin_at: float | None = None
        self._http = httpx.Client(
            timeout=timeout, transport=transport,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )
        if transport is None:
            cancellable(self._http)  # a long poll can be cut short at stop (worker_client/cancel.py)

    # --- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LeadOpsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LeadOpsClient({self.base_url!r}, worker_id={self.worker_id!r}, key_id={self.key_id!r})"

    # --- credentials and clock ---------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        with self._credentials_lock:
            return self._credentials.key_id

    def use_credentials(self, key_id: str, secret: str) -> None:
        """Sign every later request with this key (push rotation, or a key loaded from disk)."""
        with self._credentials_lock:
            self._credentials = _Credentials(key_id=key_id, secret=secret)

    def server_now(self) -> dt.datetime:
        """Our best estimate of the server's clock, from the last heartbeat's `server_time`.

        Lease times come from the server; measuring them against a skewed local clock would renew
        too late (or spin), so the worker reads leases against this instead.
        """
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._clock_offset_s)

    # --- protocol calls ----------------------------------------------------------------------------

    def heartbeat(
        self, *, version: str, status: str, running_jobs: int, metrics: Mapping[str, Any] | None = None,
        self_test: Any = None,
    ) -> dict[str, Any]:
        """POST /heartbeat; adopts a pushed pending key and learns the server's clock."""
        payload: dict[str, Any] = {"version": version, "status": status, "running_jobs": running_jobs}
        if metrics is not None:
            payload["metrics"] = dict(metrics)
        if self_test is not None:
            payload["self_test"] = self_test
        sent_at = time.time()
        answer = self.request("POST", "/heartbeat", payload)
        self._clock_learn(answer.get("server_time"), sent_at=sent_at, received_at=time.time())
        return self._credentials_adopt(answer)

    def config(self) -> dict[str, Any]:
        """GET /config: poll intervals, batch and payload limits, providers, channel."""
        return self.request("GET", "/config")

    def pull(self, max: int = 1, providers: Sequence[str] | None = None, wait_s: int = 0,
             cancel: PollCancel | None = None) -> dict[str, Any]:
        """POST /jobs/pull -> {jobs: [...], retry_after_s}; `wait_s` > 0 long-polls that long at most.

        A pull retried after a lost answer may leave the first answer's jobs leased to nobody until
        their lease lapses; the server's reaper requeues them, so that costs time, not jobs. An answer
        that stands in for a heartbeat may carry a pushed key: it is adopted here, as from a heartbeat.

        `cancel.cancel()`, from another thread, half-closes the poll's connection: the server ends the
        wait, and an answer it had already sent is still returned (worker_client/cancel.py). A
        cancelled pull is not retried: it raises `TransportFailure` unless an answer came.
        """
        payload: dict[str, Any] = {"max": max}
        if providers is not None:
            payload["providers"] = list(providers)
        if wait_s > 0:
            payload["wait_s"] = int(wait_s)
        timeout = self._http.timeout.read
        with poll_scope(cancel):
            return self._credentials_adopt(self.request(
                "POST", "/jobs/pull", payload,
                timeout=None if wait_s <= 0 or timeout is None else timeout + wait_s))

    def extend(self, job_id: int, attempt_id: str, seconds: int | None = None) -> dict[str, Any]:
        """POST /jobs/{id}/extend -> {lease_expires_at}."""
        payload: dict[str, Any] = {"attempt_id": str(attempt_id)}
        if seconds is not None:
            payload["seconds"] = seconds
        return self.request("POST", f"/jobs/{int(job_id)}/extend", payload)

    def report(
        self, job_id: int, attempt_id: str, outcome: str, leads: Sequence[Mapping[str, Any]],
        error: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
        log_tail: str | None = None,
    ) -> dict[str, Any]:
        """POST /jobs/{id}/report -> {job_state, added, duplicates, invalid, suppressed, lease_expires_at?}.

        Pass the same `idempotency_key` when the caller itself tries a report again; within this
        call every retry already reuses one key and one body.
        """
        payload: dict[str, Any] = {"attempt_id": str(attempt_id), "outcome": outcome, "leads": list(leads)}
        if error is not None:
            payload["error"] = dict(error)
        if log_tail:
            payload["log_tail"] = log_tail
        key = idempotency_key or str(uuid.uuid4())
        return self.request("POST", f"/jobs/{int(job_id)}/report", payload, headers={"Idempotency-Key": key})

    def evidence(self, job_id: int, attempt_id: str, image: bytes, content_type: str = "image/png"
                 ) -> dict[str, Any]:
        """POST /jobs/{id}/evidence -> {evidence_id}: one PNG or JPEG screenshot of the attempt.

        The raw image is the body (signed like any body); a retry after a lost answer may keep the
        screenshot twice, which costs a little storage and nothing else.
        """
        return self.request("POST", f"/jobs/{int(job_id)}/evidence", raw=image, content_type=content_type,
                            headers={"X-LeadOps-Attempt-Id": str(attempt_id)})

    def exchange(self, reports: Sequence[Mapping[str, Any]], max: int = 0,
                 providers: Sequence[str] | None = None) -> dict[str, Any]:
        """POST /jobs/exchange (protocol v1.1) -> {results: [{job_id, status, body}], jobs, retry_after_s}.

        Each report is `{job_id, idempotency_key, attempt_id, outcome, leads, error?}`; fix the keys
        before the first try, so a retried exchange replays its items instead of repeating them.
        A server without the endpoint answers 404 (`NotFound`): use `report` and `pull` then.
        """
        pull: dict[str, Any] = {"max": max}
        if providers is not None:
            pull["providers"] = list(providers)
        payload = {"reports": [dict(item) for item in reports], "pull": pull}
        return self._credentials_adopt(self.request("POST", "/jobs/exchange", payload))

    def release(self, attempt_ids: Iterable[str] | None = None) -> dict[str, Any]:
        """POST /jobs/release -> {released}; all of this worker's leases when `attempt_ids` is None."""
        payload: dict[str, Any] = {}
        if attempt_ids is not None:
            payload["attempt_ids"] = [str(attempt_id) for attempt_id in attempt_ids]
        return self.request("POST", "/jobs/release", payload)

    def update_check(self, version: str | None = None) -> dict[str, Any]:
        """GET /updates/check -> {target, reason, manifest}; `version` is what this worker runs."""
        from urllib.parse import urlencode

        return self.request("GET", "/updates/check", query=urlencode({"version": version}) if version else "")

    def manifest(self, channel: str) -> dict[str, Any]:
        """GET /releases/{channel}/latest.json: the channel's signed manifest."""
        return self.request("GET", f"/releases/{channel}/latest.json")

    def update_report(self, version: str, stage: str, ok: bool,
                      details: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST /updates/report: one stage of an update (downloaded, installed, self_test, rolled_back)."""
        payload: dict[str, Any] = {"version": version, "stage": stage, "ok": ok}
        if details is not None:
            payload["details"] = dict(details)
        return self.request("POST", "/updates/report", payload)

    def download(self, path: str, sink: Any, *, offset: int = 0) -> int:
        """Signed GET of an artifact (a path under /api/v1) into `sink` from byte `offset`.

        With an offset, asks for `Range: bytes=offset-`; a server that answers 200 instead sends the
        whole body, so the sink is rewound and truncated first. Returns the bytes written by this
        call. A dropped connection raises TransportFailure; what was written stays, and the next
        call resumes from there.
        """
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX):]
        url = f"{self.base_url}{API_PREFIX}{path}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = self._http.build_request("GET", url, headers=headers)
        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        with self._credentials_lock:
            credentials = self._credentials
        request.headers.update(sign_request(
            method="GET", path=raw_path, query=raw_query, body=b"", worker_id=self.worker_id,
            key_id=credentials.key_id, secret=credentials.secret,
        ))
        written = 0
        try:
            response = self._http.send(request, stream=True)
            try:
                self.stats.add(requests=1, failed_requests=0 if response.is_success else 1)
                if not response.is_success:
                    response.read()
                    raise error_from_response(response.status_code, response.content)
                if response.status_code == 200 and offset:
                    sink.seek(0)
                    sink.truncate()
                # No chunk size: httpx would buffer up to it, and a cut connection would lose what
                # was buffered instead of leaving it on disk for the resume.
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise TransportFailure(f"GET {path}: {type(exc).__name__}: {exc}") from exc
        return written

    # --- transport ---------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, payload: Any = None, *, query: str = "",
        headers: Mapping[str, str] | None = None, raw: bytes | None = None,
        content_type: str = "application/json", timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one signed call under API_PREFIX, with retries; return the JSON answer.

        `raw` sends those bytes as the body (with `content_type`) instead of `payload` as JSON;
        `timeout` replaces the client's read timeout for this call (a long poll).
        """
        body = raw if raw is not None else (b"" if payload is None else encode_json(payload))
        url = f"{self.base_url}{API_PREFIX}{path}" + (f"?{query}" if query else "")
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_once(method, url, body, headers, content_type, timeout=timeout)
            except httpx.TransportError as exc:
                cancelled = _cancelled()
                # A long poll cut short on purpose (worker_client/cancel.py) did not fail.
                self.stats.add(requests=1, failed_requests=0 if cancelled else 1)
                if attempt >= self.retry.max_attempts or cancelled:
                    raise TransportFailure(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                delay = self.retry.backoff_s(attempt, self._rng)
                logger.warning("%s %s failed (%s); retry %d in %.1fs", method, path, type(exc).__name__,
                               attempt, delay)
            else:
                self.stats.add(requests=1, failed_requests=0 if response.is_success else 1)
                if response.is_success:
                    # Any answered signed call refreshes the worker's liveness on the server.
                    self.last_answered_at = time.monotonic()
                    return _json_object(response)
                error = error_from_response(
                    response.status_code, response.content,
                    retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
                )
                if not _retryable(error) or attempt >= self.retry.max_attempts or _cancelled():
                    raise error
                delay = self._retry_delay(error, attempt)
                logger.warning("%s %s answered %d %s; retry %d in %.1fs", method, path, error.status,
                               error.code, attempt, delay)
            self.stats.add(retries=1)
            self._sleep(delay)

    def _send_once(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None,
        content_type: str = "application/json", *, timeout: float | None = None,
    ) -> httpx.Response:
        request = self._http.build_request(method, url, content=body or None, headers=headers,
                                           timeout=httpx.USE_CLIENT_DEFAULT if timeout is None
                                           else httpx.Timeout(self._http.timeout.connect, read=timeout))
        if body:
            request.headers["Content-Type"] = content_type
        # Sign what httpx will put on the wire: its percent-encoded path and query, not our input.
        raw_path, _, raw_query = request.url.raw_path.decode("ascii").partition("?")
        with self._credentials_lock:
            credentials = self._credentials
        request.headers.update(sign_request(
            method=method, path=raw_path, query=raw_query, body=body, worker_id=self.worker_id,
            key_id=credentials.key_id, secret=credentials.secret,
        ))
        return self._http.send(request)

    def _retry_delay(self, error: ProtocolError, attempt: int) -> float:
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.retry.max_retry_after_s)
        return self.retry.backoff_s(attempt, self._rng)

    def _clock_learn(self, server_time: Any, *, sent_at: float, received_at: float) -> None:
        if not isinstance(server_time, str):
            return
        try:
            server = parse_timestamp(server_time).timestamp()
        except ValueError:
            return
        # The server stamped its answer somewhere inside the round trip; the midpoint is the best
        # guess and is off by at most half the round trip.
        self._clock_offset_s = server - (sent_at + received_at) / 2

    def _credentials_adopt(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Switch to a pushed pending key; return the answer without the secret in it."""
        if "update_target" in answer:
            self.last_standin_at = time.monotonic()
        credentials = answer.get("credentials")
        pending = credentials.get("pending") if isinstance(credentials, dict) else None
        if not isinstance(pending, dict):
            return answer
        key_id, secret = pending.get("key_id"), pending.get("secret")
        pushed = isinstance(key_id, str) and isinstance(secret, str) and key_id and secret
        if pushed and key_id != self.key_id:
            self._credentials_switch(str(key_id), str(secret))
        # The caller may log the answer; it must never carry the secret further than this.
        return {**answer, "credentials": {"pending": {"key_id": key_id}}}

    def _credentials_switch(self, key_id: str, secret: str) -> None:
        # Persist first, switch second: a worker that switched but could not store the new key
        # would come back after a restart with a key the server may already have retired. If
        # storing fails we keep the old key; the server pushes the pending key again.
        if self._on_credentials is not None:
            try:
                self._on_credentials(key_id, secret)
            except Exception:
                logger.exception("worker %s could not store pushed key %s; keeping the old key",
                                 self.worker_id, key_id)
                return
        self.use_credentials(key_id, secret)
        logger.info("worker %s switched to pushed key %s", self.worker_id, key_id)


def _cancelled() -> bool:
    """True when this thread's long poll was cancelled (worker_client/cancel.py): never retried."""
    cancel = active_cancel()
    return cancel is not None and cancel.cancelled


def _retryable(error: ProtocolError) -> bool:
    return isinstance(error, (RateLimited, ServerError))


def _json_object(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ProtocolError(response.status_code, "invalid_response", "The answer is not a JSON object.")
    return parsed
