"""A session-wide check that no log line of the test run holds a secret or personal data.

A handler on the root logger (after the console handler, so it reads each line as written: masked
by `core.logging.PiiMaskingFilter`) formats every record with its arguments and its exception, and
keeps only the lines that hold a Saudi phone (E.164 or local form), an email address, a worker
secret the factories made, a key from the settings, or an `Authorization` / signature value. At the
end of the session any such line fails the run. Cheap: a few regex searches per record, nothing kept
for a clean line.
"""

from __future__ import annotations

import logging
import re

# Unmasked phones: +966 / 00966 / 966 with a national number, and the local mobile form 05xxxxxxxx.
_PHONE = re.compile(r"(?<![0-9*])(?:(?:\+|00)?966[1-9][0-9]{7,8}|05[0-9]{8})(?![0-9])")
# An email address with its local part intact (the mask leaves `a***@example.com`).
_EMAIL = re.compile(r"(?<![\w.+*-])[\w.+-]{2,}@[\w-]+(?:\.[\w-]+)+")
_SIGNATURE = re.compile(r"Signature=[0-9a-f]{16,}|LEADOPS-HMAC-SHA256 Signature|Bearer [\w.~+/-]{8,}", re.I)
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{24,}")
# Addresses the framework itself writes that hold no one's data.
_ALLOWED_EMAILS = {"webmaster@localhost", "root@localhost", "leadops@localhost"}

secrets_made: set[str] = set()


def remember_secret(secret: str) -> None:
    """Called by the factories for every secret they create."""
    if secret:
        secrets_made.add(secret)


class LeakCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.leaks: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            line = self.format(record)
        except Exception:
            return
        reason = self.leak_in(line)
        if reason and len(self.leaks) < 200:
            self.leaks.append(f"{reason}: {line[:300]}")

    def leak_in(self, line: str) -> str | None:
        if _PHONE.search(line):
            return "phone"
        for match in _EMAIL.finditer(line):
            if match.group(0).lower() not in _ALLOWED_EMAILS:
                return "email"
        if _SIGNATURE.search(line):
            return "authorization/signature"
        for token in _TOKEN.findall(line):
            if token in secrets_made or any(secret in token for secret in _setting_keys()):
                return "secret"
        return None


_keys: list[str] = []


def _setting_keys() -> list[str]:
    if not _keys:
        from django.conf import settings

        _keys.extend(value for name in ("SECRET_KEY", "LEADOPS_SECRETS_KEY", "LEADOPS_FINGERPRINT_KEY",
                                        "LEADOPS_SIGNING_KEY", "LEADOPS_METRICS_TOKEN")
                     if len(value := str(getattr(settings, name, "") or "")) >= 16)
    return _keys


catcher = LeakCatcher()


def attach() -> None:
    """Keep the catcher last on the root logger (a test that reconfigures logging removes it)."""
    root = logging.getLogger()
    if catcher not in root.handlers:
        root.addHandler(catcher)
