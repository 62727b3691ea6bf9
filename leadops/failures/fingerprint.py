"""The failure fingerprint: an error code and its message with every varying part taken out.

Two failures with the same cause should read the same after this, whatever job, page, id or
number they hit (docs/RUNBOOK.md, "Failure clusters").
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_EMAIL = re.compile(r"\b[^@\s]+@[^@\s]+\.[a-z]{2,}\b", re.IGNORECASE)
# A long hexadecimal word with at least one digit: a hash, a request id, a session token.
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_SPACES = re.compile(r"\s+")
MESSAGE_KEPT = 200


def failure_message_normalize(message: str) -> str:
    """The message with urls, quoted values, ids, e-mail addresses and digits replaced by tokens."""
    text = _URL.sub("<url>", message or "")
    text = _QUOTED.sub("<value>", text)
    text = _UUID.sub("<id>", text)
    text = _EMAIL.sub("<email>", text)
    text = _HEX_ID.sub("<id>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip().lower()[:MESSAGE_KEPT]


def failure_of(error: Any, *, lost: bool = False) -> tuple[str, str]:
    """(code, normalized message) of an attempt's stored error; a lost lease without one is lease_expired."""
    if not isinstance(error, dict):
        return ("lease_expired", "") if lost else ("unknown", "")
    code = str(error.get("code") or "unknown")[:64]
    return code, failure_message_normalize(str(error.get("message") or ""))


def failure_fingerprint(code: str, message: str) -> str:
    """A short stable id of (code, normalized message)."""
    return hashlib.sha256(f"{code}\n{message}".encode()).hexdigest()[:12]
