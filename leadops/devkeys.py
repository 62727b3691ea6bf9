"""Development keys: generated once into a git-ignored file so a fresh clone just runs."""

from __future__ import annotations

import base64
import fcntl
import os
import secrets
from pathlib import Path

REQUIRED_KEYS = ("SECRET_KEY", "LEADOPS_SECRETS_KEY", "LEADOPS_FINGERPRINT_KEY", "LEADOPS_SIGNING_KEY")


def _new_value(name: str) -> str:
    if name == "LEADOPS_SECRETS_KEY":
        # A Fernet key: 32 random bytes, urlsafe base64.
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    if name == "LEADOPS_SIGNING_KEY":
        # The raw 32-byte Ed25519 seed, urlsafe base64.
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(48)


def load_or_create_dev_keys(path: Path) -> dict[str, str]:
    """Return the development keys, adding any that are missing to `path`."""
    # Several processes (test workers, daphne, qcluster) may start at once on a fresh clone: a lock
    # makes sure they all end up with the same keys.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _load_or_create(path)


def _load_or_create(path: Path) -> dict[str, str]:
    values = dev_keys_read(path)
    missing = [name for name in REQUIRED_KEYS if name not in values]
    if missing:
        for name in missing:
            values[name] = _new_value(name)
        body = "# Development keys, generated on first run. Never use them in production.\n"
        body += "".join(f"{name}={values[name]}\n" for name in REQUIRED_KEYS)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return values


def dev_keys_read(path: Path) -> dict[str, str]:
    """The development keys in `path` (none when it does not exist); creates nothing."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values
