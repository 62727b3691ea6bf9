"""A tiny HTTP proxy in front of the portal processes that, by its seed, drops answers.

One request per connection: it reads the whole request, forwards it to a backend (round robin; a
backend that refuses the connection is skipped, like a load balancer's health check), reads the
whole answer, records it, and then either passes it on or, for a seeded share of the job calls,
closes the client's connection without a byte: the server committed, the worker never heard.
The records say what the portal answered 200 for, which is what the chaos test compares the stored
leads against.
"""

from __future__ import annotations

import json
import random
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Any

DROPPABLE = ("/api/v1/jobs/",)


@dataclass
class Exchange:
    """One request the proxy forwarded, and what came back (status 0: no answer from any backend)."""

    method: str
    path: str
    request_body: bytes
    status: int
    response_body: bytes
    dropped: bool
    # Who signed it, when the proxy sent it on (wall clock) and to which server port (0: none took it):
    # the emergency-rotation check compares these with the credential audit.
    key_id: str = ""
    sent_at: float = 0.0
    backend: int = 0


class ChaosProxy:
    def __init__(self, backends: list[int], *, seed: int, drop_share: float) -> None:
        self.backends = backends
        self.drop_share = drop_share
        self.records: list[Exchange] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._next = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> ChaosProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def dropped(self) -> int:
        return sum(1 for record in self.records if record.dropped)

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        try:
            head, body = _read_request(client)
        except (OSError, ValueError):
            return
        if head is None:
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        method, path = request_line.split(" ")[:2]
        raw = _rewrite_connection(head) + body
        sent_at = time.time()
        status, answer, backend = self._forward(raw)
        response_body = _response_body(answer)
        with self._lock:
            drop = path.startswith(DROPPABLE) and method == "POST" and self._rng.random() < self.drop_share
            self.records.append(Exchange(method, path.split("?")[0], body, status, response_body,
                                         drop and status != 0, _header(head, b"x-leadops-key-id"), sent_at,
                                         backend))
        try:
            if status == 0:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            elif not drop:
                client.sendall(answer)
        except OSError:
            pass
        finally:
            client.close()

    def _forward(self, raw: bytes) -> tuple[int, bytes, int]:
        """Send to the next backend that takes the connection: (status, answer, its port); status 0
        when none answered."""
        with self._lock:
            start = self._next
            self._next += 1
        for offset in range(len(self.backends)):
            port = self.backends[(start + offset) % len(self.backends)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=30)
            except OSError:
                continue  # nothing was sent: trying the other backend is safe
            try:
                upstream.sendall(raw)
                chunks = []
                while chunk := upstream.recv(65536):
                    chunks.append(chunk)
            except OSError:
                return 0, b"", port  # sent, then lost: the server may or may not have acted on it
            finally:
                upstream.close()
            answer = b"".join(chunks)
            try:
                return int(answer.split(b" ", 2)[1]), answer, port
            except (IndexError, ValueError):
                return 0, b"", port
        return 0, b"", 0


def _read_request(client: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            return None, b""
        body += chunk
    return head, body


def _header(head: bytes, name: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return ""


def _rewrite_connection(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n")
             if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _response_body(answer: bytes) -> bytes:
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        decoded = b""
        while body:
            size_line, _, rest = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            decoded += rest[:size]
            body = rest[size + 2:]
        return decoded
    return body


def answered_leads(records: list[Exchange]) -> tuple[set[str], set[str]]:
    """The phones of every lead the portal answered 200 for, and of those whose answer never came.

    A report or exchange item with status 200 was stored (first answer or replay of it); a request
    whose backend connection broke after it was sent may or may not have been.
    """
    certain: set[str] = set()
    uncertain: set[str] = set()
    for record in records:
        if record.method != "POST" or not (record.path.endswith("/report") or record.path.endswith("/exchange")):
            continue
        try:
            request = json.loads(record.request_body or b"{}")
        except ValueError:
            continue
        if record.path.endswith("/report"):
            items: list[tuple[dict[str, Any], int]] = [(request, record.status)]
        else:
            results = _json(record.response_body).get("results") or []
            statuses = [result.get("status", 0) for result in results] if record.status == 200 else []
            reports = request.get("reports") or []
            items = [(item, statuses[i] if i < len(statuses) else record.status)
                     for i, item in enumerate(reports)]
        for item, status in items:
            # Only usable phones are stored with a fingerprint (the invalid ones are counted apart).
            phones = {lead.get("phone") for lead in item.get("leads") or []
                      if isinstance(lead, dict) and str(lead.get("phone", "")).startswith("+966")}
            if status == 200:
                certain |= phones
            elif status == 0 or status >= 500:
                uncertain |= phones
    return certain, uncertain - certain


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
