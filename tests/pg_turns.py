"""A TCP proxy in front of PostgreSQL that counts round trips: each time the server answers after
the client sent something. The round-trip promises of docs/PERFORMANCE.md ("Round trips") are
checked through it."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

from django.db import connections


class TurnCounter:
    def __init__(self, host: str, port: int) -> None:
        self.turns = 0
        self._target = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._target) as server:
            client_spoke = False
            while True:
                ready, _, _ = select.select([client, server], [], [])
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    server.sendall(data)
                    client_spoke = True
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
                    if client_spoke:
                        self.turns += 1
                        client_spoke = False

    def close(self) -> None:
        self._server.close()


@contextlib.contextmanager
def counted_connection() -> Iterator[TurnCounter]:
    """This thread's default connection replaced by one through a counting proxy (no pool)."""
    original = connections["default"]
    settings = original.settings_dict
    counter = TurnCounter(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    options = {key: value for key, value in settings["OPTIONS"].items() if key != "pool"}
    proxied = type(original)({**settings, "PORT": str(counter.port), "OPTIONS": options}, "default")
    connections["default"] = proxied
    try:
        yield counter
    finally:
        proxied.close()
        connections["default"] = original
        counter.close()
