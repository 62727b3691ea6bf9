"""The fleet bench's HTTP client (bench/fleet_client.py) against a real local HTTP server.

The fleet's keep-alive mode is only a measurement if the simulated worker really keeps one
connection: answers with Content-Length and chunked bodies are read off the same connection, and a
connection the server closed while idle is reopened once, without losing the request.
"""

from __future__ import annotations

import asyncio
import json

from bench.fleet_client import Http

CRED = {"worker_id": "w-1", "key_id": "k-1", "secret": "s" * 32}


async def _read_request(reader: asyncio.StreamReader) -> dict:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return {"path": lines[0].split()[1], "headers": headers, "body": json.loads(body)}


def _serve(answers: list[str]):
    """A server that answers the n-th request of the whole run in the n-th way, and records them."""
    seen: list[dict] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                how = answers[len(seen)]
                seen.append({**request, "connection": id(writer)})
                payload = json.dumps({"n": len(seen), "path": request["path"]}).encode()
                if how == "length":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
                elif how in ("chunked", "chunked-then-close"):
                    half = len(payload) // 2
                    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n"
                                      for part in (payload[:half], payload[half:]))
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
                elif how == "until-close":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload)
                await writer.drain()
                if how in ("until-close", "chunked-then-close"):
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return handle, seen


def test_keepalive_reads_both_body_kinds_on_one_connection_and_reopens_a_closed_one():
    async def scenario() -> tuple[list, list[dict], Http]:
        handle, seen = _serve(["length", "chunked-then-close", "length"])
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = Http("127.0.0.1", port, keepalive=True)
        answers = [await http.post("/jobs/exchange", {"reports": [], "pull": {"max": 1}}, CRED)]
        answers.append(await http.post("/jobs/pull", {"max": 1, "wait_s": 30}, CRED))
        await asyncio.sleep(0.05)        # the server has closed the idle connection by now
        answers.append(await http.post("/heartbeat", {"status": "ok"}, CRED))
        http.close()
        server.close()
        await server.wait_closed()
        return answers, seen, http

    answers, seen, http = asyncio.run(scenario())
    assert answers == [(200, {"n": 1, "path": "/api/v1/jobs/exchange"}), (200, {"n": 2, "path": "/api/v1/jobs/pull"}),
                       (200, {"n": 3, "path": "/api/v1/heartbeat"})]
    assert seen[0]["connection"] == seen[1]["connection"] != seen[2]["connection"]
    assert (http.connects, http.resends) == (2, 1)
    assert seen[0]["headers"]["connection"] == "keep-alive"
    assert seen[1]["body"] == {"max": 1, "wait_s": 30}
    assert {"x-leadops-worker", "x-leadops-nonce", "authorization"} <= set(seen[0]["headers"])


def test_close_mode_opens_a_connection_per_request_and_reads_to_the_end():
    async def scenario() -> tuple[list, list[dict], Http]:
        handle, seen = _serve(["until-close", "until-close"])
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = Http("127.0.0.1", port, keepalive=False)
        answers = [await http.post("/heartbeat", {"status": "ok"}, CRED) for _ in range(2)]
        server.close()
        await server.wait_closed()
        return answers, seen, http

    answers, seen, http = asyncio.run(scenario())
    assert answers == [(200, {"n": 1, "path": "/api/v1/heartbeat"}), (200, {"n": 2, "path": "/api/v1/heartbeat"})]
    assert seen[0]["headers"]["connection"] == "close"
    assert (http.connects, http.resends) == (2, 0)
