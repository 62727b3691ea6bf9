"""docs/API.md's worked signing example is right, and its recipe is what the server accepts.

The example's values are read out of the fenced blocks that follow `<!-- worked-example: NAME -->`
markers in docs/API.md, so the test checks the page a worker author reads, not a copy of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path

import pytest

from tests.factories import make_worker
from tests.signing import signed_headers
from workers_mgmt.auth import compute_signature, string_to_sign

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"
_BLOCK_RE = re.compile(r"<!-- worked-example: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
SIGNING_HEADERS = ("X-LeadOps-Worker", "X-LeadOps-Key-Id", "X-LeadOps-Timestamp", "X-LeadOps-Nonce",
                   "X-LeadOps-Content-SHA256", "Authorization")


def example_blocks() -> dict[str, str]:
    """Every labelled block of the worked example, its text without the closing newline."""
    return dict(_BLOCK_RE.findall(API_DOC.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def example() -> dict[str, object]:
    blocks = example_blocks()
    inputs = {}
    for line in blocks["inputs"].split("\n"):
        name, _, value = line.partition(":")
        inputs[name.strip()] = value.strip()
    request_lines = blocks["request"].split("\n")
    blank = request_lines.index("")
    headers = dict(line.split(": ", 1) for line in request_lines[1:blank])
    return {
        **inputs,
        "body": blocks["body"].encode("utf-8"),
        "body_sha256": blocks["body-sha256"],
        "string_to_sign": blocks["string-to-sign"],
        "signature": blocks["signature"],
        "request_line": request_lines[0],
        "request_headers": headers,
        "request_body": "\n".join(request_lines[blank + 1:]).encode("utf-8"),
    }


def test_worked_example_uses_the_documented_inputs(example):
    # The brief of the example: if someone edits the inputs, the page must still show these.
    assert example["method"] == "POST"
    assert example["path"] == "/api/v1/jobs/pull"
    assert example["query"] == ""
    assert example["body"] == b'{"max":2}'
    assert example["worker_id"] == "worker-01"
    assert example["key_id"] == "k_0123456789abcdef"
    assert example["secret"] == "example-secret-not-for-production"
    assert example["timestamp"] == "1767225600"
    assert example["nonce"] == "AAECAwQFBgcICQoLDA0ODw"


def test_documented_body_hash_is_the_sha256_of_the_body(example):
    assert example["body_sha256"] == hashlib.sha256(example["body"]).hexdigest()


def test_documented_string_to_sign_is_what_the_server_builds(example):
    canonical = string_to_sign(
        method=example["method"], path=example["path"], query=example["query"],
        worker_id=example["worker_id"], key_id=example["key_id"], timestamp=example["timestamp"],
        nonce=example["nonce"], content_sha256=example["body_sha256"],
    )
    assert example["string_to_sign"] == canonical
    assert len(canonical.split("\n")) == 9
    assert not canonical.endswith("\n")


def test_documented_signature_is_what_the_server_computes(example):
    assert example["signature"] == compute_signature(example["secret"], example["string_to_sign"])
    # And independently of the server's helper, with the standard library.
    expected = hmac.new(example["secret"].encode(), example["string_to_sign"].encode(), hashlib.sha256)
    assert example["signature"] == expected.hexdigest()


def test_documented_request_carries_exactly_the_headers_tests_signing_builds(example):
    built = signed_headers(
        method=example["method"], path=example["path"], query=example["query"], body=example["body"],
        worker_id=example["worker_id"], key_id=example["key_id"], secret=example["secret"],
        timestamp=int(example["timestamp"]), nonce=example["nonce"],
    )
    documented = example["request_headers"]
    assert {name: documented[name] for name in SIGNING_HEADERS} == built
    assert example["request_line"] == f"{example['method']} {example['path']} HTTP/1.1"
    assert example["request_body"] == example["body"]


def test_documented_layout_is_the_one_tests_signing_builds(example, monkeypatch):
    # tests/signing.py is the suite's independent implementation of the contract; capture the string
    # it hands to HMAC and compare it line by line with the page.
    seen: list[bytes] = []
    real_new = hmac.new

    def recording_new(key, msg=None, digestmod=""):
        seen.append(msg)
        return real_new(key, msg, digestmod)

    monkeypatch.setattr(hmac, "new", recording_new)
    signed_headers(
        method=example["method"], path=example["path"], query=example["query"], body=example["body"],
        worker_id=example["worker_id"], key_id=example["key_id"], secret=example["secret"],
        timestamp=int(example["timestamp"]), nonce=example["nonce"],
    )
    assert [message.decode() for message in seen] == [example["string_to_sign"]]


@pytest.mark.django_db
def test_request_signed_with_tests_signing_gets_200(client):
    _, issued = make_worker(worker_id="worker-01")
    body = b'{"max":2}'
    headers = signed_headers(method="POST", path="/api/v1/jobs/pull", body=body,
                             worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)
    response = client.generic("POST", "/api/v1/jobs/pull", data=body, content_type="application/json",
                              headers=headers)
    assert response.status_code == 200, response.content
    # The worker's first request stands in for a heartbeat (docs/API.md, "Liveness").
    assert response.json() == {"jobs": [], "retry_after_s": response.json()["retry_after_s"],
                               "config_version": 1, "update_target": None}


@pytest.mark.django_db
def test_following_the_documented_recipe_with_live_values_gets_200(client, example):
    # Take the page's string to sign and swap each example value for a live one: a worker author who
    # copies the layout from the page is accepted by the server.
    _, issued = make_worker(worker_id="worker-01")
    live = {
        "timestamp": str(int(time.time())),
        "nonce": base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("="),
        "key_id": issued.key_id,
    }
    lines = example["string_to_sign"].split("\n")
    for field in ("timestamp", "nonce", "key_id"):
        lines = [live[field] if line == example[field] else line for line in lines]
    canonical = "\n".join(lines)
    signature = hmac.new(issued.secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    headers = dict(example["request_headers"])
    headers.pop("Content-Type")
    headers.update({
        "X-LeadOps-Key-Id": live["key_id"], "X-LeadOps-Timestamp": live["timestamp"],
        "X-LeadOps-Nonce": live["nonce"], "Authorization": f"LEADOPS-HMAC-SHA256 Signature={signature}",
    })
    response = client.generic("POST", example["path"], data=example["body"],
                              content_type="application/json", headers=headers)
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_documented_request_with_its_old_timestamp_is_refused_as_the_page_says(client, example):
    make_worker(worker_id="worker-01")
    headers = dict(example["request_headers"])
    headers.pop("Content-Type")
    response = client.generic("POST", example["path"], data=example["body"],
                              content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "Authentication failed."}}


def test_empty_body_hash_in_the_page_is_right():
    empty = hashlib.sha256(b"").hexdigest()
    assert empty in API_DOC.read_text(encoding="utf-8")


def test_example_blocks_are_valid_json_where_they_say_json():
    assert json.loads(example_blocks()["body"]) == {"max": 2}
