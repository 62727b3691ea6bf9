"""hypothesis on the request verifier (workers_mgmt/auth.py): take a correctly signed request, change
any one part of it (method, path, query, body, timestamp, nonce, key id, worker id, signature), and
it is refused with the generic 401; the untouched request is then accepted, so the change was the
reason. `LEADOPS_FUZZ_EXAMPLES` examples (default 300); the number run is printed.
"""

from __future__ import annotations

import hashlib
import os
import string
from urllib.parse import unquote

import pytest
from django.test import RequestFactory
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rest_framework.request import Request

from core.errors import Unauthorized
from tests.signing import signed_headers
from workers_mgmt.auth import WorkerSignatureAuthentication

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

EXAMPLES = int(os.environ.get("LEADOPS_FUZZ_EXAMPLES", "300"))
PARTS = ["method", "path", "query", "body", "body_and_hash", "timestamp", "nonce", "key_id", "worker_id",
         "signature"]
URL_SAFE = string.ascii_letters + string.digits + "-._~/%=&+"
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


def send(factory, *, method, path, query, body, headers):
    url = path + (f"?{query}" if query else "")
    django_request = factory.generic(method, url, data=body, content_type="application/json",
                                     headers=headers, RAW_URI=url)
    return WorkerSignatureAuthentication().authenticate(Request(django_request))


@pytest.fixture
def verifier_settings(settings):
    # Every mutated request is a failed authentication from one address: no 429 budget here.
    for name in ("IP", "WORKER"):
        setattr(settings, f"LEADOPS_AUTH_FAILURES_{name}_PER_MIN", 10**9)
        setattr(settings, f"LEADOPS_AUTH_FAILURES_{name}_BURST", 10**9)
    return settings


def test_no_mutation_of_a_signed_request_is_accepted(verifier_settings, record_property):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-sig", rate_limit_per_min=10**6)
    _, other = make_worker(worker_id="w-other", rate_limit_per_min=10**6)
    factory = RequestFactory()
    runs = {"n": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(
        method=st.sampled_from(["GET", "POST"]),
        path=st.sampled_from(["/api/v1/config", "/api/v1/heartbeat", "/api/v1/jobs/7/report"]),
        query=st.sampled_from(["", "a=1", "x=%20y&z"]),
        body=st.binary(max_size=64),
        part=st.sampled_from(PARTS),
        data=st.data(),
    )
    def check(method, path, query, body, part, data):
        headers = signed_headers(method=method, path=path, query=query, body=body, worker_id=issued.worker_id,
                                 key_id=issued.key_id, secret=issued.secret)
        sent = {"method": method, "path": path, "query": query, "body": body, "headers": dict(headers)}
        if part == "method":
            sent["method"] = data.draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
            assume(sent["method"] != method)
        elif part == "path":
            sent["path"] = "/" + data.draw(st.text(alphabet=URL_SAFE, max_size=30))
            assume(unquote(sent["path"]) != unquote(path))
        elif part == "query":
            sent["query"] = data.draw(st.text(alphabet=URL_SAFE + "?", max_size=30))
            assume(sent["query"] != query)
        elif part in ("body", "body_and_hash"):
            sent["body"] = data.draw(st.binary(max_size=64))
            assume(sent["body"] != body)
            if part == "body_and_hash":
                sent["headers"]["X-LeadOps-Content-SHA256"] = hashlib.sha256(sent["body"]).hexdigest()
        else:
            header = {"timestamp": "X-LeadOps-Timestamp", "nonce": "X-LeadOps-Nonce", "key_id": "X-LeadOps-Key-Id",
                      "worker_id": "X-LeadOps-Worker", "signature": "Authorization"}[part]
            original = headers[header]
            choices = [HEADER_TEXT, st.integers(-10**6, 10**6).map(lambda d: str(int(original) + d))
                       if part == "timestamp" else HEADER_TEXT]
            if part == "key_id":
                choices.append(st.just(other.key_id))
            if part == "worker_id":
                choices.append(st.just(other.worker_id))
            if part == "signature":
                choices.append(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
                    lambda hex64: f"LEADOPS-HMAC-SHA256 Signature={hex64}"))
            sent["headers"][header] = data.draw(st.one_of(*choices))
            assume(sent["headers"][header] != original)
        runs["n"] += 1
        with pytest.raises(Unauthorized):
            send(factory, **sent)
        worker, _ = send(factory, method=method, path=path, query=query, body=body, headers=headers)
        assert worker.pk == issued.worker_id

    check()
    record_property("fuzz_examples", runs["n"])
    record_property("fuzz_report", f"hypothesis signature mutations: {runs['n']} examples")
