"""The fleet's client side: simulated workers as asyncio tasks in one client process.

`Http` is one HTTP/1.1 connection of one simulated worker: `keepalive` keeps it open between
requests, as the reference worker's session does (Content-Length and chunked answers; a connection
the server closed is opened again, and a request that found its reused connection dead before any
answer byte is sent once more on a new one), else every request opens its own connection
(`Connection: close`), as a worker that talks every few seconds would through a proxy's idle timeout.

Two worker models (`bench/fleet.py` says which timings and why):

- `longpoll` (the reference worker after issue 27): a worker holding a result sends one
  `POST /jobs/exchange` (its report + `pull: {max: 1}`, no wait); when that or any pull brings no job
  it long-polls `POST /jobs/pull {"max": 1, "wait_s": 30}` until one comes; a heartbeat only when it
  has sent no signed request for 30 s (so only during long jobs).
- `legacy` (before): an exchange every 5 s while idle, a heartbeat every 30 s on its own.

Timed "pulls" are the exchanges (p50/p99 and the pass rule); long polls and heartbeats are timed
apart. Idle accounting: a worker is idle while it holds neither a job nor a result to report; each
request sent while idle and answered inside the window counts as an idle request, and idle time
inside the window is summed, so the
step can say requests per idle worker-minute. The request that ends an idle spell by bringing a job
is counted apart: it is work arriving, not the cost of waiting for it (with half the fleet busy, an
idle spell lasts about as long as a job, so that request alone would be several a minute).
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
import uuid
from typing import Any

from bench.common import client_ready
from bench.leads import LeadStream
from bench.miniclient import sign

HEARTBEAT_S = 30.0
IDLE_PULL_S = 5.0          # legacy: the next pull after an empty one; both: the back-off after an error
JOB_S = (5.0, 30.0)
LONG_POLL_S = 30
LONG_POLL_TIMEOUT_S = 45.0
REQUEST_TIMEOUT_S = 30.0
END_GRACE_S = 5.0          # after the window: requests still in flight then are cut (long polls are expected)


def raise_nofile() -> int:
    """The soft limit of open files up to the hard one (thousands of sockets); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


class HttpClosed(ConnectionError):
    """The connection ended before a whole answer came."""


class Http:
    def __init__(self, host: str, port: int, *, keepalive: bool) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connects = 0
        self.resends = 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, payload: dict[str, Any], cred: dict[str, str], *,
                   timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        full_path = "/api/v1" + path
        headers = {"Host": f"{self.host}:{self.port}", "Content-Type": "application/json",
                   "Connection": "keep-alive" if self.keepalive else "close", "Content-Length": str(len(body)),
                   **sign(method="POST", path=full_path, query="", body=body, worker_id=cred["worker_id"],
                          key_id=cred["key_id"], secret=cred["secret"])}
        request = (f"POST {full_path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                   + "\r\n").encode() + body
        reused = self.writer is not None
        try:
            return await asyncio.wait_for(self._exchange(request), timeout)
        except HttpClosed as exc:
            self.close()
            if not (reused and exc.args and exc.args[0] == 0):
                raise
        except BaseException:
            self.close()
            raise
        # The server had closed the idle connection before this request: once more on a new one.
        self.resends += 1
        try:
            return await asyncio.wait_for(self._exchange(request), timeout)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, request: bytes) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.connects += 1
        assert self.reader is not None
        try:
            self.writer.write(request)
            await self.writer.drain()
        except ConnectionError:
            raise HttpClosed(0) from None
        status, headers, data = await self._answer(self.reader)
        if not self.keepalive or headers.get("connection", "").lower() == "close":
            self.close()
        try:
            return status, (json.loads(data) if data else {})
        except ValueError:
            return status, {"unparsed": data[:300].decode(errors="replace")}

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise HttpClosed(len(exc.partial)) from None
        except ConnectionError:
            raise HttpClosed(0) from None
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        try:
            if "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                chunks = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":
                            pass        # trailers
                        break
                    chunks.append((await reader.readexactly(size + 2))[:-2])
                data = b"".join(chunks)
            else:
                data = await reader.read()
                self.close()
        except asyncio.IncompleteReadError as exc:
            raise HttpClosed(len(head) + len(exc.partial)) from None
        return status, headers, data


class Stats:
    def __init__(self, start_at: float, end_at: float) -> None:
        self.start_at, self.end_at = start_at, end_at
        self.pull_ms: list[float] = []
        self.long_poll_ms: list[float] = []
        self.heartbeat_ms: list[float] = []
        self.pulls = self.idle_pulls = self.reports = self.heartbeats = 0
        self.long_polls = self.long_poll_jobs = 0
        self.idle_requests = self.idle_requests_with_job = 0
        self.idle_s = 0.0
        self.errors: dict[str, int] = {}
        self.samples: list[str] = []

    def in_window(self, at: float | None = None) -> bool:
        return self.start_at <= (time.time() if at is None else at) <= self.end_at

    def error(self, key: str, detail: str) -> None:
        if time.time() > self.end_at + END_GRACE_S:
            return
        self.errors[key] = self.errors.get(key, 0) + 1
        if len(self.samples) < 5:
            self.samples.append(f"{key} {detail[:300]}")

    def idle_add(self, since: float, until: float) -> None:
        self.idle_s += max(0.0, min(until, self.end_at) - max(since, self.start_at))


class Sim:
    """One simulated worker: its credential, connection(s), lead stream, and idle state."""

    def __init__(self, *, url: str, cred: dict[str, str], stats: Stats, stream: LeadStream, rng: random.Random,
                 keepalive: bool) -> None:
        host, _, port = url.split("://", 1)[1].partition(":")
        self.http = Http(host, int(port), keepalive=keepalive)
        self.http_beats = Http(host, int(port), keepalive=keepalive)    # legacy: heartbeats on their own
        self.cred, self.stats, self.stream, self.rng = cred, stats, stream, rng
        self.idle_since: float | None = time.time()
        self.last_signed = time.time()
        self.sent_idle = False      # the last request (on the main connection) went out while idle

    def idle(self, now: float) -> None:
        if self.idle_since is None:
            self.idle_since = now

    def busy(self, now: float) -> None:
        if self.idle_since is not None:
            self.stats.idle_add(self.idle_since, now)
            self.idle_since = None

    def finish(self) -> None:
        self.busy(time.time())
        self.http.close()
        self.http_beats.close()

    async def call(self, kind: str, path: str, payload: dict[str, Any], *, http: Http | None = None,
                   timeout: float = REQUEST_TIMEOUT_S) -> tuple[dict[str, Any] | None, float]:
        """One signed request: (its answer or None on a failure, its client-side ms)."""
        sent = time.time()
        sent_idle = self.idle_since is not None
        if http is None:        # legacy heartbeats go on their own connection and task
            self.sent_idle = sent_idle
        self.last_signed = sent
        t0 = time.perf_counter()
        try:
            status, answer = await (http or self.http).post(path, payload, self.cred, timeout=timeout)
        except Exception as exc:
            self.stats.idle_requests += 1 if sent_idle and self.stats.in_window() else 0
            self.stats.error(f"{kind}:{type(exc).__name__}", repr(exc))
            return None, 0.0
        elapsed = (time.perf_counter() - t0) * 1000
        # Counted when answered: a long poll that is still waiting at the end has not cost its wait yet.
        self.stats.idle_requests += 1 if sent_idle and self.stats.in_window() else 0
        if status >= 400:
            self.stats.error(f"{kind}:{status}", json.dumps(answer)[:300])
            return None, elapsed
        return answer, elapsed

    async def exchange(self, result: dict[str, Any] | None) -> dict[str, Any] | None:
        """Report `result` (when any) and pull one: the timed request. The job it brings, else None."""
        reports = [] if result is None else [{
            "job_id": result["id"], "attempt_id": result["attempt_id"], "idempotency_key": str(uuid.uuid4()),
            "outcome": "succeeded", "leads": self.stream.leads(5)}]
        answer, elapsed = await self.call("pull", "/jobs/exchange", {"reports": reports, "pull": {"max": 1}})
        if answer is None:
            return None
        jobs = answer.get("jobs") or []
        self.stats.idle_requests_with_job += 1 if jobs and self.sent_idle and self.stats.in_window() else 0
        if self.stats.in_window():
            for item in answer.get("results") or []:
                if item.get("status") != 200:
                    self.stats.error(f"item:{item.get('status')}", json.dumps(item)[:300])
                else:
                    self.stats.reports += 1
            self.stats.pulls += 1
            self.stats.pull_ms.append(elapsed)
            self.stats.idle_pulls += 0 if jobs else 1
        return jobs[0] if jobs else None

    async def long_poll(self) -> tuple[dict[str, Any] | None, bool]:
        """One long poll: (the job it brings, else None; whether it failed)."""
        sent = time.time()
        answer, elapsed = await self.call("longpoll", "/jobs/pull", {"max": 1, "wait_s": LONG_POLL_S},
                                          timeout=LONG_POLL_TIMEOUT_S)
        if answer is None:
            return None, True
        jobs = answer.get("jobs") or []
        self.stats.idle_requests_with_job += 1 if jobs and self.sent_idle and self.stats.in_window() else 0
        if self.stats.in_window(sent):
            self.stats.long_polls += 1
            self.stats.long_poll_ms.append(elapsed)
            self.stats.long_poll_jobs += 1 if jobs else 0
        return (jobs[0] if jobs else None), False

    async def heartbeat(self, http: Http | None = None) -> None:
        answer, elapsed = await self.call("heartbeat", "/heartbeat",
                                          {"version": "1.0.0", "status": "ok", "running_jobs": 0}, http=http)
        if answer is not None and self.stats.in_window():
            self.stats.heartbeats += 1
            self.stats.heartbeat_ms.append(elapsed)

    async def work(self, seconds: float) -> None:
        """Hold the job `seconds`; a heartbeat whenever no signed request went out for HEARTBEAT_S."""
        until = time.time() + seconds
        while (left := until - time.time()) > 0:
            due = self.last_signed + HEARTBEAT_S - time.time()
            if due <= 0:
                await self.heartbeat()
                continue
            await asyncio.sleep(min(left, due))


async def run_longpoll(sim: Sim, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.time()))
    sim.last_signed = time.time()
    result: dict[str, Any] | None = None
    waiting = False
    while time.time() < sim.stats.end_at:
        if waiting:
            job, failed = await sim.long_poll()
            if failed:
                await asyncio.sleep(IDLE_PULL_S)
                continue
        else:
            job = await sim.exchange(result)
            result = None
        if job is None:
            sim.idle(time.time())
            waiting = True
            continue
        waiting = False
        sim.busy(time.time())
        await sim.work(sim.rng.uniform(*JOB_S))
        result = job


async def run_legacy(sim: Sim, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.time()))
    result: dict[str, Any] | None = None
    while time.time() < sim.stats.end_at:
        job = await sim.exchange(result)
        result = None
        if job is None:
            sim.idle(time.time())
            await asyncio.sleep(IDLE_PULL_S)
            continue
        sim.busy(time.time())
        await asyncio.sleep(sim.rng.uniform(*JOB_S))
        result = job


async def run_legacy_heartbeats(sim: Sim, first_at: float) -> None:
    await asyncio.sleep(max(0.0, first_at - time.time()))
    while time.time() < sim.stats.end_at:
        await sim.heartbeat(sim.http_beats)
        await asyncio.sleep(HEARTBEAT_S)


async def _loop_lag(stats_lag: list[float], start_at: float, end_at: float) -> None:
    """The client's own queueing: how late a 100 ms sleep wakes on this process's event loop."""
    while time.time() < end_at:
        t0 = time.perf_counter()
        await asyncio.sleep(0.1)
        if time.time() >= start_at:
            stats_lag.append((time.perf_counter() - t0 - 0.1) * 1000)


async def _fleet(assignments: list[tuple[str, dict[str, str]]], *, model: str, keepalive: bool, seed: int,
                 stream_base: int, ramp_from: float, start_at: float, end_at: float) -> dict[str, Any]:
    stats = Stats(start_at, end_at)
    rng = random.Random(seed)
    sims, tasks = [], []
    for i, (url, cred) in enumerate(assignments):
        sim = Sim(url=url, cred=cred, stats=stats, stream=LeadStream(stream_base + i, stream_size=10_000),
                  rng=random.Random(rng.random()), keepalive=keepalive)
        sims.append(sim)
        if model == "legacy":
            tasks.append(asyncio.ensure_future(run_legacy(sim, ramp_from + rng.uniform(0, IDLE_PULL_S))))
            tasks.append(asyncio.ensure_future(run_legacy_heartbeats(sim, ramp_from + rng.uniform(0, HEARTBEAT_S))))
        else:
            tasks.append(asyncio.ensure_future(run_longpoll(sim, ramp_from + rng.uniform(0, IDLE_PULL_S))))
    lag: list[float] = []
    lag_task = asyncio.ensure_future(_loop_lag(lag, start_at, end_at))
    cpu: dict[str, float] = {}

    async def cpu_at(name: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu[name] = usage.ru_utime + usage.ru_stime

    cpu_tasks = [asyncio.ensure_future(cpu_at("start", start_at)), asyncio.ensure_future(cpu_at("end", end_at))]
    await asyncio.wait(tasks, timeout=max(0.0, end_at + END_GRACE_S - time.time()))
    cut = sum(1 for task in tasks if not task.done())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, lag_task, *cpu_tasks, return_exceptions=True)
    for sim in sims:
        sim.finish()
    return {
        "pull_ms": stats.pull_ms, "long_poll_ms": stats.long_poll_ms, "heartbeat_ms": stats.heartbeat_ms,
        "pulls": stats.pulls, "idle_pulls": stats.idle_pulls, "reports": stats.reports, "heartbeats": stats.heartbeats,
        "long_polls": stats.long_polls, "long_poll_jobs": stats.long_poll_jobs,
        "idle_requests": stats.idle_requests, "idle_requests_with_job": stats.idle_requests_with_job,
        "idle_s": stats.idle_s, "cut_at_end": cut,
        "connects": sum(s.http.connects + s.http_beats.connects for s in sims),
        "resends": sum(s.http.resends + s.http_beats.resends for s in sims),
        "errors": stats.errors, "samples": stats.samples,
        "cpu_s": cpu.get("end", 0.0) - cpu.get("start", 0.0), "loop_lag_ms": lag,
    }


def fleet_process(*, assignments: list[tuple[str, dict[str, str]]], model: str, keepalive: bool, seed: int,
                  stream_base: int, ramp_s: float, sync) -> dict[str, Any]:
    """A client process: its share of the fleet, from the common start to the end of the window."""
    raise_nofile()
    start_at, end_at = client_ready(sync)
    return asyncio.run(_fleet(assignments, model=model, keepalive=keepalive, seed=seed, stream_base=stream_base,
                              ramp_from=start_at - ramp_s, start_at=start_at, end_at=end_at))
