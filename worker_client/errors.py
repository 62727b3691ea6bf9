"""Typed errors of the reference worker, one class per protocol error a worker acts on.

The server answers every error as `{"error": {"code", "message", "fields"?}}` with the HTTP status
of docs/API.md. `error_from_response` is the one place that maps that shape to a class: by
code first (the code is the contract), then by status for codes this client does not know yet.
"""

from __future__ import annotations

import json
from typing import Any


class ClientError(Exception):
    """Anything the worker client raises."""


class TransportFailure(ClientError):
    """The request never got an HTTP answer (connection refused, timeout, reset) after retries."""


class ProtocolError(ClientError):
    """The server answered with an error in the protocol shape."""

    def __init__(
        self, status: int, code: str, message: str, fields: dict[str, Any] | None = None, *,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {code}: {message}")


class MalformedRequest(ProtocolError):
    """400: the server could not read the request; a client bug, not worth a retry."""


class Unauthorized(ProtocolError):
    """401: the signature, key, clock or nonce was refused (the server never says which)."""


class Forbidden(ProtocolError):
    """403: authenticated but not allowed."""


class WorkerDisabled(Forbidden):
    """403 `worker_disabled`: staff switched this worker off."""


class AttemptNotOwned(Forbidden):
    """403 `attempt_not_owned`: the attempt belongs to another worker."""


class NotFound(ProtocolError):
    """404: no such job, attempt or endpoint."""


class Conflict(ProtocolError):
    """409: the request is valid but the job moved on."""


class AttemptSuperseded(Conflict):
    """409 `attempt_superseded`: a newer attempt of the job exists; drop the job."""


class JobFinished(Conflict):
    """409 `job_finished`: the job is already finished; drop it."""


class PayloadTooLarge(ProtocolError):
    """413: the body is over the server's limit; send smaller chunks."""


class ValidationFailed(ProtocolError):
    """422: the body was read but is not valid (see `fields`)."""


class IdempotencyKeyReused(ValidationFailed):
    """422 `idempotency_key_reused`: the key was already used with another body."""


class RateLimited(ProtocolError):
    """429: over the worker's request rate; `retry_after_s` says when to come back."""


class ServerError(ProtocolError):
    """5xx: the server failed; retried with backoff before it is raised."""


_BY_CODE: dict[str, type[ProtocolError]] = {
    "unauthorized": Unauthorized,
    "worker_disabled": WorkerDisabled,
    "attempt_not_owned": AttemptNotOwned,
    "attempt_superseded": AttemptSuperseded,
    "job_finished": JobFinished,
    "payload_too_large": PayloadTooLarge,
    "idempotency_key_reused": IdempotencyKeyReused,
    "rate_limited": RateLimited,
}

_BY_STATUS: dict[int, type[ProtocolError]] = {
    400: MalformedRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
}

# Errors after which a job's lease is gone for good: the worker drops the job instead of retrying.
LEASE_LOST_ERRORS: tuple[type[ProtocolError], ...] = (
    AttemptSuperseded, JobFinished, AttemptNotOwned, NotFound,
)


def error_class(status: int, code: str) -> type[ProtocolError]:
    """The most specific class for a status and code."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ProtocolError)


def error_from_response(status: int, body: bytes, *, retry_after_s: float | None = None) -> ProtocolError:
    """Build the typed error for an HTTP error answer, tolerating bodies not in the protocol shape.

    A proxy in front of the portal may answer 502 with an HTML page; that must still become a
    typed error (code `http_502`) rather than a JSON decoding crash in the worker.
    """
    code, message, fields = f"http_{status}", "", None
    try:
        parsed = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or "")
        fields = error.get("fields") if isinstance(error.get("fields"), dict) else None
    else:
        # Keep a short, printable excerpt of a foreign body for the log; never the whole page.
        message = body[:200].decode("utf-8", errors="replace").strip()
    cls = error_class(status, code)
    return cls(status, code, message, fields, retry_after_s=retry_after_s)
