"""Worker secrets at rest: Fernet under LEADOPS_SECRETS_KEY (MultiFernet, so the key can rotate).

`LEADOPS_SECRETS_KEY` may hold several comma-separated Fernet keys: the first encrypts, all decrypt.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def fernet() -> MultiFernet:
    return _fernet(settings.LEADOPS_SECRETS_KEY)


def encrypt_secret(secret: str) -> str:
    return fernet().encrypt(secret.encode()).decode()


@lru_cache(maxsize=4096)
def _decrypt_cached(keys: str, token: str) -> str:
    return _fernet(keys).decrypt(token.encode()).decode()


def decrypt_secret(token: str) -> str:
    # Decryption is cached per process: the token is immutable, and the auth path runs on every
    # worker request.
    return _decrypt_cached(settings.LEADOPS_SECRETS_KEY, token)


def new_secret() -> str:
    """A new worker secret: 32 random bytes as urlsafe text (the HMAC key is its UTF-8 bytes)."""
    return secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "k_" + secrets.token_hex(8)


def new_enrollment_token() -> str:
    return "enr_" + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 of an enrollment token: the token has 256 random bits, so no slow hash is needed."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def is_under_first_key(token: str) -> bool:
    """Whether the first key of LEADOPS_SECRETS_KEY (the one that encrypts) decrypts this token."""
    from cryptography.fernet import InvalidToken

    first = settings.LEADOPS_SECRETS_KEY.split(",")[0].strip()
    try:
        Fernet(first.encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """The same secret under the first key of LEADOPS_SECRETS_KEY (MultiFernet.rotate)."""
    return fernet().rotate(token.encode()).decode()
