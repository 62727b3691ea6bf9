"""The load of the API bench: reference workers in client processes, each worker on its own thread.

With `mode="heartbeat"` a worker only sends signed heartbeats, back to back.
With `mode="exchange"` a worker instead sends one POST /jobs/exchange per round trip: the reports
of the jobs it holds, and a pull of `batch` more (docs/API.md, "POST /jobs/exchange").

One client process holds several workers (threads: the GIL makes one process a poor load generator
on its own). Every worker loops: pull (max = batch), then report each job `succeeded` with its
leads under a fresh Idempotency-Key. Only what completes inside the measured window counts; the
first moments (connections, server warm-up) fall before the window starts.
"""

from __future__ import annotations

import contextlib
import resource
import threading
import time
import traceback
import uuid
from collections import Counter
from typing import Any

from bench.common import client_ready, wait_until
from bench.leads import LeadStream

# Fresh numbers one worker may make in one window (a 10 s window of 500-lead reports takes ~10,000);
# with this size the number space holds STREAMS streams, and the bench reuses them in turn.
STREAM_SIZE = 20_000
STREAMS = 3_000


def make_client(kind: str, base_url: str, cred: dict[str, str]):
    if kind == "reference":
        from worker_client.client import LeadOpsClient, RetryPolicy

        # No silent retries: an error is counted, not hidden behind a backoff.
        return LeadOpsClient(base_url, cred["worker_id"], cred["key_id"], cred["secret"], timeout=60.0,
                             retry=RetryPolicy(max_attempts=1))
    from bench.miniclient import MiniClient

    return MiniClient(base_url, cred["worker_id"], cred["key_id"], cred["secret"], timeout=60.0)


def client_kind_available(kind: str) -> str:
    """The client to use: `reference` when worker_client imports, else the bench's own."""
    if kind in ("auto", "reference"):
        try:
            from worker_client.client import LeadOpsClient  # noqa: F401
            from worker_client.signing import sign_request  # noqa: F401

            return "reference"
        except Exception:
            if kind == "reference":
                raise
    return "mini"


class _Worker(threading.Thread):
    def __init__(self, *, client, stream: LeadStream, batch: int, leads_per_job: int,
                 start_at: float, end_at: float, ready_made: list[list[dict[str, Any]]] | None = None) -> None:
        super().__init__(daemon=True)
        self.client, self.stream = client, stream
        self.ready_made = ready_made or []
        self.batch, self.leads_per_job = batch, leads_per_job
        self.start_at, self.end_at = start_at, end_at
        self.jobs = 0
        self.leads = 0
        self.pulls = 0
        self.empty_pulls = 0
        self.pull_ms: list[float] = []
        self.report_ms: list[float] = []
        self.counts = Counter()
        self.errors = Counter()
        self.error_samples: list[str] = []

    def _error(self, exc: BaseException) -> None:
        key = f"{type(exc).__name__}:{getattr(exc, 'status', '')}:{getattr(exc, 'code', '')}"
        self.errors[key] += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(f"{key} {str(exc)[:300]}")
        time.sleep(0.05)

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never let a thread die silently
            self._error(exc)
            self.error_samples.append(traceback.format_exc()[-1500:])

    def _loop(self) -> None:
        end_at, start_at = self.end_at, self.start_at
        while True:
            now = time.time()
            if now >= end_at:
                return
            t0 = time.perf_counter()
            try:
                answer = self.client.pull(max=self.batch)
            except Exception as exc:
                self._error(exc)
                continue
            t1 = time.perf_counter()
            in_window = time.time() >= start_at
            if in_window:
                self.pulls += 1
                self.pull_ms.append((t1 - t0) * 1000)
            jobs = answer.get("jobs") or []
            if not jobs:
                if in_window:
                    self.empty_pulls += 1
                time.sleep(0.02)
                continue
            for job in jobs:
                leads = self.ready_made.pop() if self.ready_made else self.stream.leads(self.leads_per_job)
                t2 = time.perf_counter()
                try:
                    result = self.client.report(job["id"], job["attempt_id"], "succeeded", leads,
                                                idempotency_key=str(uuid.uuid4()))
                except Exception as exc:
                    self._error(exc)
                    continue
                t3 = time.perf_counter()
                done_at = time.time()
                if start_at <= done_at <= end_at:
                    self.jobs += 1
                    self.leads += len(leads)
                    self.report_ms.append((t3 - t2) * 1000)
                    for name in ("added", "duplicates", "invalid"):
                        self.counts[name] += int(result.get(name, 0))


class _ExchangeWorker(_Worker):
    """Protocol v1.1: one signed round trip reports the last jobs and takes the next `batch`."""

    def _loop(self) -> None:
        end_at, start_at = self.end_at, self.start_at
        held: list[dict[str, Any]] = []
        while True:
            if time.time() >= end_at:
                return
            reports = [{"job_id": job["id"], "idempotency_key": str(uuid.uuid4()),
                        "attempt_id": job["attempt_id"], "outcome": "succeeded",
                        "leads": self.ready_made.pop() if self.ready_made else self.stream.leads(self.leads_per_job)}
                       for job in held]
            t0 = time.perf_counter()
            try:
                answer = self.client.exchange(reports, max=self.batch)
            except Exception as exc:
                self._error(exc)
                held = []
                continue
            t1 = time.perf_counter()
            done_at = time.time()
            if done_at >= start_at:
                self.pulls += 1
                self.pull_ms.append((t1 - t0) * 1000)
            for item, result in zip(reports, answer.get("results") or [], strict=False):
                if result.get("status") != 200:
                    self.errors[f"item:{result.get('status')}"] += 1
                    continue
                if start_at <= done_at <= end_at:
                    self.jobs += 1
                    self.leads += len(item["leads"])
                    for name in ("added", "duplicates", "invalid"):
                        self.counts[name] += int(result["body"].get(name, 0))
            held = answer.get("jobs") or []
            if not held:
                if done_at >= start_at:
                    self.empty_pulls += 1
                time.sleep(0.02)


class _HeartbeatWorker(_Worker):
    """Signed heartbeats only, back to back: what one costs the server (`jobs` counts heartbeats)."""

    def _loop(self) -> None:
        while time.time() < self.end_at:
            sent = time.perf_counter()
            try:
                self.client.heartbeat(version="1.0.0", status="ok", running_jobs=0)
            except Exception as exc:
                self._error(exc)
            else:
                self._heartbeat_done((time.perf_counter() - sent) * 1000)

    def _heartbeat_done(self, elapsed_ms: float) -> None:
        if self.start_at <= time.time() <= self.end_at:
            self.jobs += 1
            self.pulls += 1
            self.pull_ms.append(elapsed_ms)


WORKER_CLASSES = {"v1": _Worker, "exchange": _ExchangeWorker, "heartbeat": _HeartbeatWorker}


def client_process(*, index: int, kind: str, creds: list[dict[str, str]], base_urls: list[str],
                   batch: int, leads_per_job: int, stream_base: int, sync,
                   ready_made_reports: int = 0, mode: str = "v1") -> dict[str, Any]:
    # Workers are spread over the daphne processes round-robin (a proxy would do the same).
    clients = [make_client(kind, base_urls[(index * len(creds) + i) % len(base_urls)], cred)
               for i, cred in enumerate(creds)]
    streams = [LeadStream(stream_base + i, stream_size=STREAM_SIZE) for i in range(len(clients))]
    # Big reports are made before the clock starts: on a 2-core machine the load generator shares
    # the cores with the server, and making leads is the worker's cost, not the portal's.
    ready_made = [[stream.leads(leads_per_job) for _ in range(ready_made_reports)][::-1] for stream in streams]
    start_at, end_at = client_ready(sync)
    # The threads start at once: what they do before start_at is warm-up and is not counted.
    worker_class = WORKER_CLASSES[mode]
    workers = [
        worker_class(client=client, stream=streams[i], batch=batch, leads_per_job=leads_per_job,
                start_at=start_at, end_at=end_at, ready_made=ready_made[i])
        for i, client in enumerate(clients)
    ]
    for worker in workers:
        worker.start()
    wait_until(start_at)
    at_start = resource.getrusage(resource.RUSAGE_SELF)
    wait_until(end_at)
    at_end = resource.getrusage(resource.RUSAGE_SELF)
    for worker in workers:
        worker.join(timeout=max(5.0, end_at - time.time() + 90))
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    counts, errors = Counter(), Counter()
    samples: list[str] = []
    for worker in workers:
        counts.update(worker.counts)
        errors.update(worker.errors)
        samples.extend(worker.error_samples)
    return {
        "jobs": sum(w.jobs for w in workers),
        "leads": sum(w.leads for w in workers),
        "pulls": sum(w.pulls for w in workers),
        "empty_pulls": sum(w.empty_pulls for w in workers),
        "pull_ms": [x for w in workers for x in w.pull_ms],
        "report_ms": [x for w in workers for x in w.report_ms],
        "counts": dict(counts),
        "errors": dict(errors),
        "error_samples": samples[:5],
        "cpu_s": (at_end.ru_utime + at_end.ru_stime) - (at_start.ru_utime + at_start.ru_stime),
        "alive_threads": sum(1 for w in workers if w.is_alive()),
    }
