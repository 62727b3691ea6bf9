"""Live monitor latency: commit -> WebSocket viewer, at 50 events/s with 100 viewers on daphne.

A separate Django process (standing in for the qcluster or another server process) publishes
monitor events at a steady rate, each in its own transaction; daphne (PostgreSQL + Redis channel
layer, production settings) pushes them to 100 staff WebSocket viewers on /ws/monitor/. Latency is
the viewer's receive time minus the event's `at` (stamped inside the transaction, just before it
commits), over every (viewer, event) delivery. Target: p95 <= 500 ms.

Run alone with `python -m bench.live_latency [--viewers 100] [--rate 50] [--seconds 20]`;
`bench.run --only live` calls `measure()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import struct
import subprocess
import sys

from bench import common, portal
from bench.common import ROOT, drop_database, median, name_value_table, percentile

DATABASE = os.environ.get("BENCH_DB_PREFIX", "leadops_bench") + "_live"
TARGET_P95_MS = 500.0

SESSION_CHILD = r"""
import django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
user, _ = get_user_model().objects.get_or_create(username="bench-live", defaults={"is_staff": True})
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.save()
print(session.session_key)
"""

PUBLISH_CHILD = r"""
import sys, time
import django
django.setup()
from django.db import transaction
from core import events
rate, count = float(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
for n in range(count):
    due = start + n / rate
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    with transaction.atomic():
        events.publish("worker.online", worker_id=f"bench-{n}")
print(round(time.monotonic() - start, 2))
"""


# --- a minimal WebSocket client (RFC 6455, text frames), so the bench needs no extra package ----


class Viewer:
    def __init__(self, port: int, session_key: str) -> None:
        self.port = port
        self.session_key = session_key
        self.latencies_ms: dict[str, float] = {}
        self.connected = asyncio.Event()
        self.closed_code: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((
            "GET /ws/monitor/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{self.port}\r\nCookie: sessionid={self.session_key}\r\n\r\n"
        ).encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {head[:80]!r}")
        self.connected.set()
        reading = asyncio.create_task(self._read(reader, writer))
        await stop.wait()
        reading.cancel()
        with contextlib.suppress(Exception):
            writer.write(self._frame(0x8, struct.pack("!H", 1000)))
            writer.close()

    @staticmethod
    def _frame(opcode: int, payload: bytes) -> bytes:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        return header + mask + masked

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            first, second = await reader.readexactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            payload = await reader.readexactly(length)
            received = dt.datetime.now(dt.UTC)
            if opcode == 0x1:
                event = json.loads(payload)
                if event.get("type") == "worker.online":
                    sent = dt.datetime.fromisoformat(event["at"])
                    self.latencies_ms[event["data"]["worker_id"]] = (received - sent).total_seconds() * 1000
            elif opcode == 0x9:
                writer.write(self._frame(0xA, payload))
            elif opcode == 0x8:
                self.closed_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return


async def _watch(port: int, session_key: str, viewers: int, publish) -> list[Viewer]:
    stop = asyncio.Event()
    clients = [Viewer(port, session_key) for _ in range(viewers)]
    tasks = [asyncio.create_task(client.run(stop)) for client in clients]
    await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), timeout=60)
    await asyncio.sleep(1.0)  # every consumer has joined the group
    await asyncio.to_thread(publish)
    await asyncio.sleep(3.0)  # the last events drain
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return clients


def measure(*, viewers: int = 100, rate: float = 50.0, seconds: float = 20.0, keep_db: bool = False) -> dict:
    """Start daphne on a fresh database with the Redis layer and time commit -> viewer latency."""
    if not portal.redis_reachable(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")):
        raise RuntimeError("Redis is not reachable: the live bench measures the Redis channel layer")
    env, log_dir = portal.fresh_portal(DATABASE, redis=True)
    session_key = subprocess.run([sys.executable, "-c", SESSION_CHILD], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    count = int(rate * seconds)
    daphne = portal.Daphne(env, log_dir)
    published: dict[str, float] = {}
    try:
        daphne.wait_ready()

        def publish() -> None:
            out = subprocess.run([sys.executable, "-c", PUBLISH_CHILD, str(rate), str(count)], cwd=ROOT, env=env,
                                 check=True, capture_output=True, text=True)
            published["seconds"] = float(out.stdout.strip().splitlines()[-1])

        clients = asyncio.run(_watch(daphne.port, session_key, viewers, publish))
    finally:
        daphne.stop()
        if not keep_db:
            drop_database(DATABASE)
    latencies = [ms for client in clients for ms in client.latencies_ms.values()]
    expected = viewers * count
    p95 = percentile(latencies, 95) if latencies else float("nan")
    return {
        "viewers": viewers, "rate_per_s": rate, "events": count, "publish_seconds": published.get("seconds"),
        "deliveries": len(latencies), "deliveries_expected": expected,
        "p50_ms": round(median(latencies), 1) if latencies else None,
        "p95_ms": round(p95, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "target_p95_ms": TARGET_P95_MS,
        "pass": bool(latencies) and len(latencies) == expected and p95 <= TARGET_P95_MS,
        "daphne_log": str(daphne.log_path),
    }


def render(result: dict) -> str:
    rows = [("viewers", f"{result['viewers']}"), ("events/s", f"{result['rate_per_s']:.0f}"),
            ("events", f"{result['events']}"),
            ("deliveries", f"{result['deliveries']:,} of {result['deliveries_expected']:,}"),
            *common.latency_rows(result, unit="ms", quantiles=("p50", "p95", "p99"),
                                 target=f"p95 <= {TARGET_P95_MS:.0f} ms")]
    return name_value_table(rows)


def main() -> int:
    parser = common.module_parser("bench.live_latency", __doc__ or "")
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", default=None, help="JSON file (default bench/results/live-<date>.json)")
    args = parser.parse_args()
    result = measure(viewers=args.viewers, rate=args.rate, seconds=args.seconds, keep_db=args.keep_db)
    from pathlib import Path

    from bench.common import dump_json

    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"live-{dt.date.today().isoformat()}.json"
    dump_json(out, result)
    print(render(result))
    print(f"written to {out}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
