"""Signing of docs/API.md, checked against vectors computed here with hmac/hashlib."""

from __future__ import annotations

import base64
import hashlib
import hmac

from worker_client.signing import content_sha256, new_nonce, sign_request, string_to_sign

SECRET = "correct horse battery staple"
BODY = b'{"max":5}'
FIXED = {"worker_id": "w-riyadh-01", "key_id": "key_01HX", "timestamp": 1700000000,
         "nonce": "AAECAwQFBgcICQoLDA0ODw"}
# Pinned once from the contract (see test_golden_vector_is_what_the_contract_computes): a change to
# the canonical string on either side shows up here as a different value.
GOLDEN_BODY_SHA256 = "17757150fe6a8ad9a7c02fd450ed75d5440ead4d039bf3e5f70373867eab9fc6"
GOLDEN_SIGNATURE = "e77db05a3c3118191baa1d220160e77323db1889346e9ae42adb7b108f0900a6"


def independent_signature(secret: str, lines: list[str]) -> str:
    return hmac.new(secret.encode("utf-8"), "\n".join(lines).encode("utf-8"), hashlib.sha256).hexdigest()


def test_string_to_sign_is_the_nine_documented_lines_without_trailing_newline():
    canonical = string_to_sign(method="post", path="/api/v1/jobs/pull", query="", worker_id="w-riyadh-01",
                               key_id="key_01HX", timestamp=1700000000, nonce="AAECAwQFBgcICQoLDA0ODw",
                               content_sha256=GOLDEN_BODY_SHA256)

    assert canonical.split("\n") == [
        "LEADOPS-HMAC-SHA256", "POST", "/api/v1/jobs/pull", "", "w-riyadh-01", "key_01HX", "1700000000",
        "AAECAwQFBgcICQoLDA0ODw", GOLDEN_BODY_SHA256,
    ]
    assert not canonical.endswith("\n")


def test_golden_vector_is_what_the_contract_computes():
    lines = ["LEADOPS-HMAC-SHA256", "POST", "/api/v1/jobs/pull", "", "w-riyadh-01", "key_01HX", "1700000000",
             "AAECAwQFBgcICQoLDA0ODw", hashlib.sha256(BODY).hexdigest()]

    assert hashlib.sha256(BODY).hexdigest() == GOLDEN_BODY_SHA256
    assert independent_signature(SECRET, lines) == GOLDEN_SIGNATURE


def test_sign_request_returns_the_six_headers_with_the_golden_signature():
    headers = sign_request(method="POST", path="/api/v1/jobs/pull", query="", body=BODY, secret=SECRET, **FIXED)

    assert headers == {
        "X-LeadOps-Worker": "w-riyadh-01",
        "X-LeadOps-Key-Id": "key_01HX",
        "X-LeadOps-Timestamp": "1700000000",
        "X-LeadOps-Nonce": "AAECAwQFBgcICQoLDA0ODw",
        "X-LeadOps-Content-SHA256": GOLDEN_BODY_SHA256,
        "Authorization": f"LEADOPS-HMAC-SHA256 Signature={GOLDEN_SIGNATURE}",
    }


def test_query_is_signed_raw_on_its_own_line():
    headers = sign_request(method="get", path="/api/v1/config", query="x=1&y=%20z", body=b"", secret=SECRET,
                           **FIXED)

    expected = independent_signature(SECRET, [
        "LEADOPS-HMAC-SHA256", "GET", "/api/v1/config", "x=1&y=%20z", "w-riyadh-01", "key_01HX", "1700000000",
        "AAECAwQFBgcICQoLDA0ODw", hashlib.sha256(b"").hexdigest(),
    ])
    assert headers["Authorization"] == f"LEADOPS-HMAC-SHA256 Signature={expected}"


def test_empty_body_hash_is_sha256_of_the_empty_string():
    assert content_sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    headers = sign_request(method="GET", path="/api/v1/config", query="", body=b"", worker_id="w", key_id="k",
                           secret=SECRET)
    assert headers["X-LeadOps-Content-SHA256"] == hashlib.sha256(b"").hexdigest()


def test_secret_is_used_as_its_utf8_bytes():
    secret = "سر-ÄØ-секрет"
    headers = sign_request(method="POST", path="/p", query="", body=b"{}", secret=secret, **FIXED)

    expected = independent_signature(secret, [
        "LEADOPS-HMAC-SHA256", "POST", "/p", "", "w-riyadh-01", "key_01HX", "1700000000",
        "AAECAwQFBgcICQoLDA0ODw", hashlib.sha256(b"{}").hexdigest(),
    ])
    assert headers["Authorization"].endswith(expected)


def test_nonce_is_16_random_bytes_base64url_without_padding():
    nonces = {new_nonce() for _ in range(200)}

    assert len(nonces) == 200
    for nonce in nonces:
        assert "=" not in nonce and "+" not in nonce and "/" not in nonce
        assert len(base64.urlsafe_b64decode(nonce + "==")) == 16


def test_each_signing_gets_a_fresh_nonce_and_the_current_time():
    import time

    first = sign_request(method="GET", path="/p", query="", body=b"", worker_id="w", key_id="k", secret=SECRET)
    second = sign_request(method="GET", path="/p", query="", body=b"", worker_id="w", key_id="k", secret=SECRET)

    assert first["X-LeadOps-Nonce"] != second["X-LeadOps-Nonce"]
    assert abs(int(first["X-LeadOps-Timestamp"]) - time.time()) < 5
