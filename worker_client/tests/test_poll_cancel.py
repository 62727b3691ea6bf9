"""A stopping worker's long poll (worker_client/cancel.py): cut short, and nothing it brings is lost."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

from worker_client.cancel import PollCancel
from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.errors import TransportFailure
from worker_client.tests.fake_portal import BASE_URL, FakePortal
from worker_client.tests.test_worker import StubProvider, wait_until
from worker_client.worker import Worker

ANSWER = {"jobs": [{"id": 7, "attempt_id": "a-7", "attempt": 1, "provider": "maps", "payload": {},
                    "lease_expires_at": "2099-01-01T00:00:00+00:00"}], "retry_after_s": 0}


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)
    return head


def _respond(conn: socket.socket, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)


class SlowServer:
    """A server that holds the first request like a long poll, notes whether the client half-closed
    its connection, and answers anyway (as a server does that claimed jobs just before the FIN)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.request_in = threading.Event()
        self.saw_fin = False
        self.connections = 0
        self.paths: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        held, _ = self.listener.accept()
        self.connections += 1
        self.paths.append(_read_request(held).split(b" ")[1])
        self.request_in.set()
        held.settimeout(5)
        try:
            self.saw_fin = held.recv(1) == b""
        except TimeoutError:
            self.saw_fin = False
        _respond(held, ANSWER)  # kept open: the client must not send its next request on it
        self.listener.settimeout(5)
        other, _ = self.listener.accept()
        self.connections += 1
        self.paths.append(_read_request(other).split(b" ")[1])
        _respond(other, {"released": 1})
        other.close()
        held.close()


def _poll_cut_short(client: LeadOpsClient, server: SlowServer) -> dict[str, Any]:
    """Send a long poll, cancel it once the server holds it, and return what the pull returned."""
    cancel = PollCancel()
    box: dict[str, Any] = {}
    poll = threading.Thread(target=lambda: box.update(answer=client.pull(max=1, wait_s=30, cancel=cancel)))
    poll.start()
    assert server.request_in.wait(5)
    cancel.cancel()
    poll.join(5)
    assert not poll.is_alive()
    return box["answer"]


def test_a_cancelled_long_poll_half_closes_and_still_returns_the_answer_already_sent():
    server = SlowServer()
    client = LeadOpsClient(server.url, "w-1", "k-1", "secret", retry=RetryPolicy(max_attempts=3))
    answer = _poll_cut_short(client, server)

    assert server.saw_fin, "the server never saw the client's FIN: the poll was not cut short"
    assert answer["jobs"][0]["attempt_id"] == "a-7"
    # The half-closed connection is not reused: the next call opens another one.
    assert client.release(["a-7"]) == {"released": 1}
    assert server.connections == 2
    assert server.paths == [b"/api/v1/jobs/pull", b"/api/v1/jobs/release"]
    client.close()


def _late_answer_portal() -> tuple[FakePortal, httpx.MockTransport, dict[str, Any]]:
    """A portal whose long poll answers with a job only after the worker was told to stop."""
    portal = FakePortal(config={"long_poll_wait_s": 30})
    state: dict[str, Any] = {"worker": None, "polled": threading.Event()}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jobs/pull") and b'"wait_s"' in request.read():
            state["polled"].set()
            wait_until(lambda: state["worker"].stopping, timeout=10)
            time.sleep(0.3)  # the answer is still on its way when the worker's loop has stopped
            portal.add_jobs(1)
        return portal.handle(request)

    return portal, httpx.MockTransport(handle), state


def test_a_job_a_long_poll_brings_after_the_stop_is_released_before_the_worker_ends():
    portal, transport, state = _late_answer_portal()
    client = LeadOpsClient(BASE_URL, portal.worker_id, *next(iter(portal.keys.items())), transport=transport,
                           retry=RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_cap_s=0.02))
    worker = Worker(client, StubProvider(), use_exchange=False)
    state["worker"] = worker
    worker.start()
    assert state["polled"].wait(10)

    assert worker.stop(timeout=10)

    # By the time the worker has ended, the job its poll brought back is queued again.
    (job,) = portal.jobs.values()
    assert job.state == "queued"
    assert [call.json["attempt_ids"] for call in portal.calls("/jobs/release")] == [[job.attempt_id]]
    assert worker.counters.jobs_released == 1
    assert portal.calls("/report") == []
    assert portal.calls("/heartbeat")[-1].json["status"] == "stopped"


def test_a_cancelled_long_poll_the_server_hangs_up_on_is_neither_retried_nor_a_failed_request():
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    request_in = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        _read_request(conn)
        request_in.set()
        conn.settimeout(5)
        conn.recv(1)  # the client's FIN: the server ends the wait and sends nothing, as daphne does
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    client = LeadOpsClient(url, "w-1", "k-1", "secret", retry=RetryPolicy(max_attempts=5, backoff_base_s=0.01))
    cancel = PollCancel()
    failures: list[BaseException] = []

    def poll() -> None:
        try:
            client.pull(max=1, wait_s=30, cancel=cancel)
        except TransportFailure as exc:
            failures.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    assert request_in.wait(5)
    cancel.cancel()
    thread.join(5)

    assert not thread.is_alive() and len(failures) == 1
    assert client.stats.snapshot() == {"requests": 1, "failed_requests": 0, "retries": 0}
    client.close()
    listener.close()


def test_the_environments_proxy_is_still_used_and_a_poll_through_it_can_be_cut_short(monkeypatch):
    proxy = SlowServer()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    client = LeadOpsClient("http://portal.invalid", "w-1", "k-1", "secret", retry=RetryPolicy(max_attempts=1))
    answer = _poll_cut_short(client, proxy)

    assert proxy.saw_fin and answer["jobs"][0]["attempt_id"] == "a-7"
    assert client.release(["a-7"]) == {"released": 1}
    assert proxy.paths == [b"http://portal.invalid/api/v1/jobs/pull", b"http://portal.invalid/api/v1/jobs/release"]
    client.close()
