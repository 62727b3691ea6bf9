"""Ed25519 signing of channel manifests (docs/RELEASES.md, "How a worker verifies a manifest").

`LEADOPS_SIGNING_KEY` holds one or more raw 32-byte Ed25519 seeds, base64 (standard or url-safe),
separated by commas. Every key signs every manifest, so during a key rotation the old and the new
key both sign and workers that trust either accept it. A key's id is the first 16 hex digits of the
SHA-256 of its raw public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only: the bytes a signature covers, alike in Python and Node."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    public_raw: bytes
    private: Ed25519PrivateKey

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")


def _decode_seed(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            raw = decode(padded)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == 32:
            return raw
    raise ImproperlyConfigured(
        "LEADOPS_SIGNING_KEY must hold base64 raw 32-byte Ed25519 seeds, comma-separated.")


@lru_cache(maxsize=4)
def _keys_from(setting: str) -> tuple[SigningKey, ...]:
    keys = []
    for part in setting.split(","):
        part = part.strip()
        if not part:
            continue
        private = Ed25519PrivateKey.from_private_bytes(_decode_seed(part))
        public_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        keys.append(SigningKey(key_id=key_id_of(public_raw), public_raw=public_raw, private=private))
    if not keys:
        raise ImproperlyConfigured("LEADOPS_SIGNING_KEY is empty.")
    return tuple(keys)


def signing_keys() -> tuple[SigningKey, ...]:
    """Every configured manifest key, the first being the one new worker packages should trust."""
    return _keys_from(settings.LEADOPS_SIGNING_KEY)


def sign_envelope(signed: dict[str, Any]) -> dict[str, Any]:
    """Wrap `signed` in the manifest envelope with one signature per configured key."""
    message = canonical_json(signed)
    signatures = [
        {"keyid": key.key_id, "sig": base64.b64encode(key.private.sign(message)).decode("ascii")}
        for key in signing_keys()
    ]
    return {"signed": signed, "signatures": signatures}


def envelope_verify(envelope: dict[str, Any], trusted: dict[str, bytes]) -> bool:
    """True when at least one signature of a trusted key id verifies over the canonical `signed`."""
    message = canonical_json(envelope["signed"])
    for entry in envelope.get("signatures", []):
        public_raw = trusted.get(entry.get("keyid"))
        if public_raw is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(public_raw).verify(base64.b64decode(entry["sig"]), message)
        except (InvalidSignature, ValueError, binascii.Error):
            continue
        return True
    return False
