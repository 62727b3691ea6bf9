"""One chaos worker process: the reference worker (worker_client) with a deterministic fake provider.

`python -m tests.chaos.worker_proc --url URL --worker-id W --key-id K --secret S --seed N --log FILE`

The leads of a job follow from its payload's `seq` alone (`job_leads`), so the test knows every
phone a job can report. Beside the normal work, by its seed this process also:
- sends some finished reports again with the same Idempotency-Key (a duplicate: the first answer
  must come back, and nothing may change);
- plays a straggler (with --bait-provider, see `straggle`): the holder lets a bait job's lease lapse
  without renewing while a taker takes it over, then reports it late (the answer must be 409, or
  200 when nobody took it yet).
What it sees goes to a JSON-lines log, one flushed line per event, so a kill loses nothing written.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from worker_client.client import LeadOpsClient, RetryPolicy
from worker_client.errors import ClientError, ProtocolError
from worker_client.provider import ScrapeCancelled, ScrapeError
from worker_client.worker import Worker

# Phones come from a pool smaller than the jobs' total leads, so jobs overlap: duplicates happen.
PHONE_POOL = 2000


def job_leads(seq: int) -> list[dict[str, Any]]:
    """The leads a job reports: 3 to 6 numbers from the pool, plus an invalid one now and then."""
    leads = [{"name": f"Shop {(seq * 7 + k * 13) % PHONE_POOL}",
              "phone": f"+96650{(seq * 7 + k * 13) % PHONE_POOL:07d}", "city": "Riyadh"}
             for k in range(3 + seq % 4)]
    if seq % 11 == 0:
        leads.append({"name": "No phone", "phone": "12"})
    return leads


def job_fails(seq: int) -> bool:
    """A job that every attempt fails (retryable): it ends in the dead-letter queue."""
    return seq % 29 == 0


class FakeProvider:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def scrape(self, payload: Mapping[str, Any], *, cancel: threading.Event | None = None
               ) -> list[dict[str, Any]]:
        seq = int(payload.get("seq", 0))
        delay = self.delay_s * (0.5 + (seq % 5) / 4)
        if cancel is not None and cancel.wait(delay):
            raise ScrapeCancelled()
        if job_fails(seq):
            raise ScrapeError("blocked", "the fake site always blocks this job")
        return job_leads(seq)


class EventLog:
    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self._lock = threading.Lock()

    def write(self, **event: Any) -> None:
        with self._lock:
            self._file.write(json.dumps({"at": time.time(), **event}) + "\n")
            self._file.flush()


class ChaosWorker(Worker):
    """The reference worker, plus duplicate reports of what it finished."""

    def __init__(self, *args: Any, rng: random.Random, log: EventLog, duplicate_share: float,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = rng
        self.log = log
        self.duplicate_share = duplicate_share
        self.replays: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.replays_lock = threading.Lock()

    def _answered(self, item: dict[str, Any], body: Any) -> None:
        if isinstance(body, dict) and self.rng.random() < self.duplicate_share:
            with self.replays_lock:
                self.replays.append((item, body))

    def _exchange_result(self, lease: Any, item: dict[str, Any], result: Any) -> None:
        if isinstance(result, dict) and result.get("status") == 200:
            self._answered(item, result.get("body"))
        super()._exchange_result(lease, item, result)

    def _report_v1(self, item: Mapping[str, Any]) -> None:
        answer = self.client.report(item["job_id"], item["attempt_id"], item["outcome"], item["leads"],
                                    error=item.get("error"), idempotency_key=item["idempotency_key"])
        self._answered(dict(item), answer)
        self._report_counted(item)

    def replay_due(self) -> None:
        """Send the kept reports again, same key and body (over v1): the first answer must come back."""
        with self.replays_lock:
            due, self.replays = self.replays, []
        for item, first in due:
            try:
                again = self.client.report(item["job_id"], item["attempt_id"], item["outcome"], item["leads"],
                                           error=item.get("error"), idempotency_key=item["idempotency_key"])
            except ProtocolError as exc:
                self.log.write(kind="duplicate", job_id=item["job_id"], status=exc.status, code=exc.code)
                continue
            except ClientError as exc:
                self.log.write(kind="duplicate_unsent", job_id=item["job_id"], error=str(exc)[:200])
                continue
            self.log.write(kind="duplicate", job_id=item["job_id"], status=200, same=_same(first, again))


def _same(first: dict[str, Any], again: dict[str, Any]) -> bool:
    return all(again.get(name) == first.get(name) for name in ("job_state", "added", "duplicates", "invalid"))


def straggle(client: LeadOpsClient, log: EventLog, stop: threading.Event, *, provider: str, hold_s: float
             ) -> None:
    """Play the holder (`hold_s` > 0) or a taker (0) on the bait provider, which only stragglers pull.

    The holder takes a fresh bait job, never renews it, and reports it `hold_s` later. A taker gives
    fresh bait jobs back at once (a release does not count as an attempt) and keeps only jobs on a
    later attempt, i.e. a holder's job the reaper requeued: it reports that at once. So the holder's
    late report comes from a superseded attempt (409), or, when no taker got there yet, is taken (200).
    """
    while not stop.is_set():
        try:
            jobs = client.pull(max=1, providers=[provider]).get("jobs") or []
            if jobs and not hold_s and jobs[0].get("attempt", 1) < 2:
                client.release([jobs[0]["attempt_id"]])
                stop.wait(1.0)  # leave the fresh job to the holder for a moment
                continue
        except ClientError as exc:
            log.write(kind="straggler_unsent", error=str(exc)[:200])
            jobs = []
        if not jobs:
            stop.wait(0.3)
            continue
        job = jobs[0]
        if stop.wait(hold_s):
            return
        leads = job_leads(int((job.get("payload") or {}).get("seq", 0)))
        kind = "late" if hold_s else "takeover"
        try:
            answer = client.report(job["id"], job["attempt_id"], "succeeded", leads,
                                   idempotency_key=str(uuid.uuid4()))
        except ProtocolError as exc:
            log.write(kind=kind, job_id=job["id"], status=exc.status, code=exc.code)
        except ClientError as exc:
            log.write(kind=f"{kind}_unsent", job_id=job["id"], error=str(exc)[:200])
        else:
            log.write(kind=kind, job_id=job["id"], status=200, job_state=answer.get("job_state"))


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--url", "--worker-id", "--key-id", "--secret", "--log"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--v1", action="store_true", help="report over v1 calls only (no exchange)")
    parser.add_argument("--delay", type=float, default=0.4)
    parser.add_argument("--provider", required=True, help="the provider this worker's loop takes jobs of")
    parser.add_argument("--bait-provider", default="",
                        help="play a straggler on this provider's jobs beside the normal work")
    parser.add_argument("--straggle-after", type=float, default=0.0,
                        help="seconds the holder keeps a bait job before it reports it; 0: a taker")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    log = EventLog(args.log)
    # Patient retries: a server may be down for a few seconds, and a lost answer is retried with the
    # same key until it gets through.
    retry = RetryPolicy(max_attempts=12, backoff_base_s=0.2, backoff_cap_s=2.0)
    client = LeadOpsClient(args.url, args.worker_id, args.key_id, args.secret, timeout=10, retry=retry,
                           rng=random.Random(args.seed + 1))
    worker = ChaosWorker(client, FakeProvider(args.delay), batch=3, concurrency=3, rng=rng, log=log,
                         duplicate_share=0.1, use_exchange=not args.v1, min_renew_interval_s=0.5,
                         providers=[args.provider])
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    log.write(kind="started", worker_id=args.worker_id, v1=args.v1)

    def chaos_loop() -> None:
        while not worker._stop.wait(1.0):
            worker.replay_due()

    threading.Thread(target=chaos_loop, daemon=True).start()
    if args.bait_provider:
        threading.Thread(target=straggle, args=(client, log, worker._stop),
                         kwargs={"provider": args.bait_provider, "hold_s": args.straggle_after}, daemon=True).start()
    worker.run()
    worker.replay_due()
    log.write(kind="stopped", **worker.counters.snapshot())


if __name__ == "__main__":
    main()
