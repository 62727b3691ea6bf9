"""Drive schemathesis cases through Django's test client, in process, signed like a real worker.

schemathesis generates each case from the served OpenAPI document; `requests` prepares it (so the
body bytes, path and query are exactly what would go on the wire); the request is signed from those
bytes (`tests/signing.py`, an implementation written from the contract), sent through Django's test
client (no server, no sockets), and the answer is checked by schemathesis against the same schema.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.signing import signed_headers

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Sent:
    """One case as it went on the wire."""

    method: str
    path: str
    query: str
    body: bytes
    content_type: str
    headers: dict[str, str]
    prepared: requests.PreparedRequest


@dataclass
class Tally:
    """How many cases ran, per operation and per answer status."""

    cases: int = 0
    by_operation: collections.Counter = field(default_factory=collections.Counter)
    by_status: collections.Counter = field(default_factory=collections.Counter)
    seconds: float = 0.0

    def count(self, operation: str, status: int) -> None:
        self.cases += 1
        self.by_operation[operation] += 1
        self.by_status[status] += 1

    def line(self, title: str) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.by_status.items()))
        spread = ", ".join(f"{label} {count}" for label, count in sorted(self.by_operation.items()))
        return (f"{title}: {self.cases} cases in {self.seconds:.0f} s over {len(self.by_operation)} "
                f"operations\n  answers {statuses}\n  per operation: {spread}")


_schemas: dict[str, Any] = {}


def load_schema(client) -> Any:
    """The schema as served at /api/v1/schema/ (read once per process: it costs a second or two)."""
    if "served" not in _schemas:
        response = client.get("/api/v1/schema/", {"format": "json"})
        assert response.status_code == 200, response.content[:300]
        _schemas["served"] = schemathesis.openapi.from_dict(response.json())
    return _schemas["served"]


def label(operation) -> str:
    return f"{operation.method.upper()} {operation.path}"


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def prepare(case) -> Sent | None:
    """The case as `requests` would send it; None when it cannot be sent at all (a header value
    that is not latin-1, say: no HTTP client can put it on the wire)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    request = requests.Request(
        method=kwargs["method"], url=kwargs["url"], headers=kwargs.get("headers"),
        params=kwargs.get("params"), data=kwargs.get("data"), json=kwargs.get("json"),
        files=kwargs.get("files"), cookies=kwargs.get("cookies"),
    )
    try:
        prepared = request.prepare()
        headers = {name: str(value) for name, value in prepared.headers.items()}
        for value in headers.values():
            value.encode("latin-1")
    except (ValueError, UnicodeError, requests.exceptions.RequestException):
        return None
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    path, _, query = prepared.path_url.partition("?")
    content_type = headers.pop("Content-Type", "") or "application/octet-stream"
    for name in ("Content-Length", "Cookie"):
        headers.pop(name, None)
    return Sent(method=prepared.method or "GET", path=path, query=query, body=body,
                content_type=content_type, headers=headers, prepared=prepared)


def sign(sent: Sent, *, worker_id: str, key_id: str, secret: str) -> None:
    """Sign the exact bytes about to be sent, with a fresh nonce and the current timestamp."""
    sent.headers.update(signed_headers(method=sent.method, path=sent.path, query=sent.query, body=sent.body,
                                       worker_id=worker_id, key_id=key_id, secret=secret))


def send(client, sent: Sent):
    url = sent.path + (f"?{sent.query}" if sent.query else "")
    # The request line as a WSGI server (gunicorn) hands it over: the path as sent, still escaped.
    return client.generic(sent.method, url, data=sent.body, content_type=sent.content_type,
                          headers=sent.headers, RAW_URI=url)


def as_schemathesis_response(response, sent: Sent, elapsed: float) -> schemathesis.Response:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
    else:
        content = response.content
    headers = {name.lower(): [value] for name, value in response.headers.items()}
    return schemathesis.Response(status_code=response.status_code, headers=headers, content=content,
                                 request=sent.prepared, elapsed=elapsed, verify=True)


def run(schema, *, cases: int, tally: Tally, exercise: Callable[[Any, Any], None]) -> None:
    """Spread `cases` over every operation, half valid and half not, each for `exercise(op, case)`."""
    started = time.perf_counter()
    every = operations(schema)
    per_mode = max(1, -(-cases // (2 * len(every))))
    for operation in every:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_one(operation, mode, per_mode, exercise)
    tally.seconds = time.perf_counter() - started


def _run_one(operation, mode: GenerationMode, examples: int, exercise: Callable[[Any, Any], None]) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case):
        exercise(operation, case)

    one()
