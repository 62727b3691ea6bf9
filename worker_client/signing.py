"""Request signing of the worker protocol (docs/API.md).

The canonical string is nine lines joined by "\\n" with no trailing newline. The path and the query
are signed exactly as they go on the wire (percent-encoding included), because that is what the
server reads back; re-encoding either on one side only would break every signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SCHEME = "LEADOPS-HMAC-SHA256"

HEADER_WORKER = "X-LeadOps-Worker"
HEADER_KEY_ID = "X-LeadOps-Key-Id"
HEADER_TIMESTAMP = "X-LeadOps-Timestamp"
HEADER_NONCE = "X-LeadOps-Nonce"
HEADER_CONTENT_SHA256 = "X-LeadOps-Content-SHA256"
HEADER_AUTHORIZATION = "Authorization"

NONCE_BYTES = 16


def content_sha256(body: bytes) -> str:
    """Lowercase hex SHA-256 of the raw body (of b"" for a request without one)."""
    return hashlib.sha256(body).hexdigest()


def new_nonce() -> str:
    """16 random bytes, base64url without padding (22 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(NONCE_BYTES)).decode("ascii").rstrip("=")


def string_to_sign(
    *, method: str, path: str, query: str, worker_id: str, key_id: str, timestamp: int | str, nonce: str,
    content_sha256: str,
) -> str:
    """The canonical string the HMAC covers: nine lines, no trailing newline."""
    return "\n".join(
        [SCHEME, method.upper(), path, query, worker_id, key_id, str(timestamp), nonce, content_sha256]
    )


def signature(secret: str, canonical: str) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical string, keyed by the secret's UTF-8 bytes."""
    return hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_request(
    *, method: str, path: str, query: str, body: bytes, worker_id: str, key_id: str, secret: str,
    timestamp: int | None = None, nonce: str | None = None,
) -> dict[str, str]:
    """Return the six signing headers for one request.

    `path` is the path as sent (no query) and `query` the raw query string as sent ("" for none).
    `timestamp` and `nonce` are fixed only by tests; a real request always gets fresh ones, since
    the server refuses a nonce it has seen in the last ten minutes.
    """
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = new_nonce() if nonce is None else nonce
    body_hash = content_sha256(body)
    canonical = string_to_sign(
        method=method, path=path, query=query, worker_id=worker_id, key_id=key_id,
        timestamp=timestamp_text, nonce=nonce, content_sha256=body_hash,
    )
    return {
        HEADER_WORKER: worker_id,
        HEADER_KEY_ID: key_id,
        HEADER_TIMESTAMP: timestamp_text,
        HEADER_NONCE: nonce,
        HEADER_CONTENT_SHA256: body_hash,
        HEADER_AUTHORIZATION: f"{SCHEME} Signature={signature(secret, canonical)}",
    }
