"""Receiver credentials at rest (webhook URLs and signing secrets): Fernet under LEADOPS_SECRETS_KEY.

The same key as worker secrets (several comma-separated keys: the first encrypts, all decrypt), so
one key rotation covers both; see docs/DEPLOY.md.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def encrypt_text(text: str) -> str:
    """The Fernet token of `text` ("" stays "")."""
    return _fernet(settings.LEADOPS_SECRETS_KEY).encrypt(text.encode()).decode() if text else ""


def decrypt_text(token: str) -> str:
    return _fernet(settings.LEADOPS_SECRETS_KEY).decrypt(token.encode()).decode() if token else ""
