"""A long poll that another thread can cut short without losing the answer already on its way.

A worker told to stop while its long poll waits on the server (docs/API.md, "Long poll") must not
leave behind jobs the server claimed for that poll. Closing the connection is not enough: an answer
the server had already sent would die unread in the socket, its jobs leased to nobody until the
lease lapses. So a cancel half-closes the connection instead (a TCP FIN after the request, the read
side still open):

- the server sees the client gone and ends the wait; a claim made as it hung up goes back to the
  queue (queueing/long_poll.py), and nothing is sent;
- an answer the server sent before it saw the FIN is still read here, and the worker gives its jobs
  back with POST /jobs/release.

`cancellable(client)` wraps httpcore's network backend under httpx's own transports, so that each
connection remembers which `PollCancel` was active on the thread that last wrote a request to it.
A half-closed connection reports itself as readable, which is httpcore's sign that the server has
closed it: it is never reused for another request.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpcore
import httpx

_active = threading.local()


class PollCancel:
    """One long poll's cancel handle; `cancel()` may be called from any thread, before or during it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: _TrackedStream | None = None
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            stream = self._stream
        if stream is not None:
            stream.write_close()

    def _sent_on(self, stream: _TrackedStream) -> None:
        with self._lock:
            self._stream = stream
            cancelled = self.cancelled
        if cancelled:
            stream.write_close()


@contextlib.contextmanager
def poll_scope(cancel: PollCancel | None) -> Iterator[None]:
    """While inside, requests this thread writes can be half-closed by `cancel`."""
    previous = getattr(_active, "cancel", None)
    _active.cancel = cancel
    try:
        yield
    finally:
        _active.cancel = previous


def active_cancel() -> PollCancel | None:
    """The cancel handle of the long poll this thread is sending, if any."""
    return getattr(_active, "cancel", None)


class _TrackedStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._write_closed = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)
        cancel = getattr(_active, "cancel", None)
        if cancel is not None:
            cancel._sent_on(self)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _TrackedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._write_closed:
            return True  # never reused: this connection can no longer carry a request
        return self._inner.get_extra_info(info)

    def write_close(self) -> None:
        self._write_closed = True
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            # The plain socket's shutdown, also under TLS: a FIN without ending the TLS session,
            # so the answer can still be read and decrypted.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_WR)


class _TrackingBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> httpcore.NetworkStream:
        return _TrackedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _TrackedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def cancellable(client: httpx.Client) -> httpx.Client:
    """Let `PollCancel` half-close the connections of `client`'s own transports: the default one and
    those httpx mounted for the proxies of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY).

    httpx builds its httpcore pools itself and offers no parameter for the network backend, and a
    transport passed in would turn the environment's proxies off; so the pools' backend is wrapped
    once here (httpx and httpcore are pinned; worker_client/tests/test_poll_cancel.py fails if this
    stops reaching the wire)."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None and not isinstance(backend, _TrackingBackend):
            pool._network_backend = _TrackingBackend(backend)  # type: ignore[union-attr]
    return client
