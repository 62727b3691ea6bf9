"""The reference worker loop: heartbeat, pull, scrape, renew leases, report in chunks, release.

Threads, not asyncio, so that it reads like the Node workers it stands for and runs anywhere:
- the caller's thread runs `run()`: pull a batch, hand its jobs to a small thread pool, repeat;
- one heartbeat thread reports liveness on the configured interval and reloads the config when
  the server's `config_version` moves;
- one lease renewer thread extends every running job's lease when half of it is left. One thread
  for all leases rather than one per job, because a fleet simulation runs hundreds of workers with
  up to 50 jobs each in one process; renewing at half the lease leaves ample slack for that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Protocol

from worker_client.cancel import PollCancel
from worker_client.client import LeadOpsClient, parse_timestamp
from worker_client.errors import (
    LEASE_LOST_ERRORS,
    ClientError,
    NotFound,
    PayloadTooLarge,
    ProtocolError,
    Unauthorized,
    ValidationFailed,
    WorkerDisabled,
    error_from_response,
)
from worker_client.provider import ScrapeCancelled, ScrapeError

logger = logging.getLogger("worker_client.worker")

WORKER_VERSION = "reference-py/0.1.0"

# The server read the report and refused it; sending the same bytes again cannot help.
REJECTED_REPORT_ERRORS: tuple[type[ProtocolError], ...] = (ValidationFailed, PayloadTooLarge)
MAX_DEFAULT_CONCURRENCY = 16
# How long a stopping worker waits for its cancelled long poll to end. A cancel ends it within a
# round trip (worker_client/cancel.py); this bounds a transport that cannot cancel (a test's fake).
POLL_STOP_GRACE_S = 2.0
# A worker whose other calls keep it alive still sends a full heartbeat (status, metrics) this often.
HEARTBEAT_FULL_S = 300.0


class ScrapeProvider(Protocol):
    def scrape(
        self, payload: Mapping[str, Any], *, cancel: threading.Event | None = None
    ) -> list[dict[str, Any]]: ...


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What the worker takes from GET /config, with the defaults it uses until it has an answer."""

    config_version: int | None = None
    poll_interval_s: float = 5.0
    heartbeat_interval_s: float = 30.0
    max_batch: int = 10
    report_chunk_leads: int = 200
    # A fallback only: a heartbeat naming a new update target wakes the check at once.
    update_check_interval_s: float = 300.0
    # How long an idle pull may wait on the server for work (0: the server does not hold pulls).
    long_poll_wait_s: int = 0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WorkerSettings:
        defaults = cls()
        chunk = _positive(config.get("report_chunk_leads"), defaults.report_chunk_leads)
        # A server that lowers the per-report limit below the chunk size would refuse every chunk.
        chunk = min(chunk, _positive(config.get("max_leads_per_report"), chunk))
        version = config.get("config_version")
        return cls(
            config_version=version if isinstance(version, int) else None,
            poll_interval_s=_positive(config.get("poll_interval_s"), defaults.poll_interval_s),
            heartbeat_interval_s=_positive(config.get("heartbeat_interval_s"), defaults.heartbeat_interval_s),
            max_batch=int(_positive(config.get("max_batch"), defaults.max_batch)),
            report_chunk_leads=int(chunk),
            update_check_interval_s=_positive(config.get("update_check_interval_s"),
                                              defaults.update_check_interval_s),
            long_poll_wait_s=int(_positive(config.get("long_poll_wait_s"), 0)),
        )


def _positive(value: Any, default: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return value
    return default


class WorkerCounters:
    """What a worker did, for summaries, heartbeat metrics and tests; safe across threads."""

    FIELDS = ("jobs_done", "jobs_failed", "jobs_dropped", "jobs_abandoned", "jobs_released", "leads_sent",
              "reports", "extensions", "heartbeats", "pulls", "errors", "evidence_sent")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def __getattr__(self, name: str) -> int:
        if name in WorkerCounters.FIELDS:
            with self._lock:
                return self._values[name]
        raise AttributeError(name)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


@dataclasses.dataclass
class _Lease:
    job_id: int
    attempt_id: str
    expires_at: dt.datetime
    renew_at: float = 0.0  # time.monotonic() when the next extension is due
    lost: threading.Event = dataclasses.field(default_factory=threading.Event)


class LeaseRenewer:
    """Extends each tracked lease when half of what is left has passed, on one thread."""

    def __init__(self, client: LeadOpsClient, counters: WorkerCounters, *, min_interval_s: float = 1.0,
                 seconds: int | None = None) -> None:
        self.client = client
        self.counters = counters
        self.min_interval_s = min_interval_s
        self.seconds = seconds
        self._leases: dict[str, _Lease] = {}
        self._condition = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="lease-renewer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def track(self, job_id: int, attempt_id: str, expires_at: dt.datetime) -> _Lease:
        lease = _Lease(job_id=job_id, attempt_id=attempt_id, expires_at=expires_at)
        with self._condition:
            self._schedule(lease)
            self._leases[attempt_id] = lease
            self._condition.notify_all()
        return lease

    def update(self, attempt_id: str, expires_at: dt.datetime) -> None:
        """A partial report moved the lease too: start counting from the new expiry."""
        with self._condition:
            lease = self._leases.get(attempt_id)
            if lease is not None:
                lease.expires_at = expires_at
                self._schedule(lease)
                self._condition.notify_all()

    def forget(self, attempt_id: str) -> None:
        with self._condition:
            self._leases.pop(attempt_id, None)

    def held(self) -> list[_Lease]:
        """Leases still held: pulled but neither reported nor dropped."""
        with self._condition:
            return list(self._leases.values())

    def _schedule(self, lease: _Lease) -> None:
        remaining_s = (lease.expires_at - self.client.server_now()).total_seconds()
        lease.renew_at = time.monotonic() + max(self.min_interval_s, remaining_s / 2)

    def _loop(self) -> None:
        while True:
            with self._condition:
                due = self._wait_for_due()
                if due is None:
                    return
            for lease in due:
                try:
                    self._renew(lease)
                except Exception:
                    # One odd answer must not end the thread that keeps every other lease alive.
                    logger.exception("renewing the lease of job %s crashed", lease.job_id)
                    with self._condition:
                        self._schedule(lease)

    def _wait_for_due(self) -> list[_Lease] | None:
        """Block until some lease is due (returned) or the renewer stops (None). Holds the lock."""
        while not self._stopped:
            now = time.monotonic()
            due = [lease for lease in self._leases.values() if lease.renew_at <= now]
            if due:
                return due
            upcoming = min((lease.renew_at for lease in self._leases.values()), default=None)
            self._condition.wait(timeout=None if upcoming is None else upcoming - now)
        return None

    def _renew(self, lease: _Lease) -> None:
        try:
            answer = self.client.extend(lease.job_id, lease.attempt_id, self.seconds)
        except LEASE_LOST_ERRORS as exc:
            logger.info("lease of job %s lost (%s); dropping it", lease.job_id, exc.code)
            lease.lost.set()
            self.forget(lease.attempt_id)
            return
        except ClientError as exc:
            # Keep trying while there is time: the server takes an extension of a lapsed lease as
            # long as nobody else claimed the job.
            logger.warning("could not extend job %s: %s", lease.job_id, exc)
            self.counters.add("errors")
            with self._condition:
                self._schedule(lease)
            return
        self.counters.add("extensions")
        expires = answer.get("lease_expires_at")
        with self._condition:
            if isinstance(expires, str):
                lease.expires_at = parse_timestamp(expires)
            self._schedule(lease)


class Worker:
    """One reference worker: `run()` blocks; `start()` runs it on a thread; `stop()` ends it."""

    def __init__(
        self, client: LeadOpsClient, provider: ScrapeProvider, *, batch: int | None = None,
        concurrency: int | None = None, providers: Sequence[str] | None = None, version: str = WORKER_VERSION,
        min_renew_interval_s: float = 1.0, extend_seconds: int | None = None, updater: Any = None,
        use_exchange: bool = True, self_test: dict[str, Any] | None = None,
        on_heartbeat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.provider = provider
        self.requested_batch = batch
        self.providers = list(providers) if providers is not None else None
        self.version = version
        self.counters = WorkerCounters()
        self.settings = WorkerSettings()
        self.last_error: str | None = None
        self._concurrency = concurrency or MAX_DEFAULT_CONCURRENCY
        self._stop = threading.Event()
        self._renewer = LeaseRenewer(client, self.counters, min_interval_s=min_renew_interval_s,
                                     seconds=extend_seconds)
        self._thread: threading.Thread | None = None
        self._ran = False
        self._prepared = False
        # An `updater.Updater`: asks /updates/check as soon as a heartbeat names another release
        # than the one this worker runs, and on the configured interval as a fallback
        # (docs/RELEASES.md, "The reference worker").
        self.updater = updater
        # Under the supervising agent (worker_client/agent.py) there is no updater here: the agent ran
        # the self-test sent in heartbeats, and `on_heartbeat` hands it every heartbeat's answer,
        # whose `update_target` tells it to switch versions (docs/RELEASES.md, "The supervising agent").
        self.self_test = self_test
        self.on_heartbeat = on_heartbeat
        # Set to send a heartbeat now (after an install: the portal learns at once what runs).
        self._heartbeat_due = threading.Event()
        self._heartbeat_sent_at = 0.0
        # The last pull found nothing: the next one long-polls (when the server holds pulls).
        self._idle = False
        # Set to ask /updates/check now (a heartbeat named a new update target).
        self._update_due = threading.Event()
        # The heartbeat's last `update_target` as (version, sequence), and the one the latest update
        # check started from: a target already tried (and failed) is not asked for on every
        # heartbeat, only again on the interval, or at once when the portal names a new one.
        self._update_target: tuple[str, Any] | None = None
        self._update_target_checked: tuple[str, Any] | None = None
        # Protocol v1.1: a job's final report waits for the next pull and goes with it in one
        # POST /jobs/exchange; a server that answers 404 to it turns this off for good (v1 then).
        self.use_exchange = use_exchange
        self._pending: list[tuple[_Lease, dict[str, Any]]] = []
        self._pending_lock = threading.Lock()
        # The long poll on its own thread, while one is out (`_long_poll`).
        self._poll: _Poll | None = None

    @property
    def worker_id(self) -> str:
        return self.client.worker_id

    @property
    def batch(self) -> int:
        """Jobs per pull: what was asked for, never more than the server's max_batch."""
        max_batch = self.settings.max_batch
        return max(1, min(self.requested_batch or max_batch, max_batch))

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """True while the worker's own thread (from start()) is alive."""
        return self._thread is not None and self._thread.is_alive()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, duration: float | None = None) -> threading.Thread:
        """Run the worker on a thread of its own and return that thread."""
        self._thread = threading.Thread(target=self.run, kwargs={"duration": duration},
                                        name=f"worker-{self.worker_id}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 60.0) -> bool:
        """Ask the worker to stop; wait for its leases to be released when it runs on its own thread.

        Jobs already scraped still get reported (the work is done and reporting is cheap); jobs not
        scraped yet are given back with POST /jobs/release so another worker takes them at once.
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def run(self, duration: float | None = None) -> None:
        """Work until stop() is called or `duration` seconds have passed, then clean up.

        A Worker runs once: its threads and counters belong to that one run.
        """
        if self._ran:
            raise RuntimeError("a Worker runs once; make a new one")
        self._ran = True
        timer = threading.Timer(duration, self._stop.set) if duration is not None else None
        heartbeat = threading.Thread(target=self._heartbeat_loop, name=f"heartbeat-{self.worker_id}",
                                     daemon=True)
        executor = ThreadPoolExecutor(max_workers=self._concurrency,
                                      thread_name_prefix=f"job-{self.worker_id}")
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            if not self._prepared:
                self._config_load()
            self._heartbeat_send()
            heartbeat.start()
            if self.updater is not None:
                threading.Thread(target=self._update_loop, name=f"update-{self.worker_id}",
                                 daemon=True).start()
            self._renewer.start()
            while not self._stop.is_set():
                self._pull_and_work(executor)
        finally:
            self._stop.set()
            if self._poll is not None:
                self._poll.cancel.cancel()  # the server stops waiting (and claiming) for it now
            # Wake the heartbeat and update threads out of their interval waits: they see the stop.
            self._heartbeat_due.set()
            self._update_due.set()
            if timer is not None:
                timer.cancel()
            executor.shutdown(wait=True)
            if heartbeat.is_alive():
                heartbeat.join()
            self._pending_flush()
            self._renewer.stop()
            self._release_held()
            self._poll_finish()
            self._heartbeat_send(final=True)

    def prepare(self) -> None:
        """Load the configuration before `run()` (a version the agent holds ready to take over)."""
        self._config_load()
        self._prepared = True

    def summary(self) -> dict[str, Any]:
        """Counters of the worker and of its HTTP client, as one flat dict."""
        return {"worker_id": self.worker_id, **self.counters.snapshot(), **self.client.stats.snapshot()}

    # --- the loop ----------------------------------------------------------------------------------

    def _pull_and_work(self, executor: ThreadPoolExecutor) -> None:
        try:
            answer = self._pull()
            self.counters.add("pulls")
            self._standin_note(answer)
            jobs = [job for job in answer.get("jobs") or [] if isinstance(job, dict)]
            if not jobs:
                retry = answer.get("retry_after_s")
                if self.settings.long_poll_wait_s > 0 and (not self._idle or retry == 0):
                    # Nothing now, or a long poll that waited its full time: the next pull waits on
                    # the server for work instead of sleeping here.
                    self._idle = True
                    return
                self._stop.wait(_positive(retry, self.settings.poll_interval_s))
                return
            self._idle = False
            leases = [self._track(job) for job in jobs]
        except ClientError as exc:
            self._note_error("pull", exc)
            self._stop.wait(self.settings.poll_interval_s)
            return
        except Exception as exc:  # a bug must not end a worker that a fleet counts on
            logger.exception("pull crashed")
            self._note_error("pull", exc)
            self._stop.wait(self.settings.poll_interval_s)
            return
        futures = [executor.submit(self._work, job, lease) for job, lease in zip(jobs, leases, strict=True)]
        wait(futures)

    def _pull(self, max_jobs: int | None = None) -> dict[str, Any]:
        """Pull new work, carrying the final reports waiting since the last pull (exchange)."""
        max_jobs = self.batch if max_jobs is None else max_jobs
        with self._pending_lock:
            pending, self._pending = self._pending, []
        if self._idle and not pending and max_jobs > 0 and self.settings.long_poll_wait_s > 0:
            return self._long_poll(max_jobs)
        if self.use_exchange:
            try:
                answer = self.client.exchange([item for _, item in pending], max=max_jobs,
                                              providers=self.providers)
            except NotFound:
                logger.info("the server has no /jobs/exchange; using the v1 calls")
                self.use_exchange = False
            except (ValidationFailed, PayloadTooLarge) as exc:
                # Refused as a whole (over a limit): this once, the items go one by one.
                self._note_error("exchange", exc)
            except BaseException:
                # Not sent, or the answer was lost: the same items (same keys) go with the next pull,
                # where a replay returns their first answers.
                with self._pending_lock:
                    self._pending[:0] = pending
                raise
            else:
                results = answer.get("results") or []
                for (lease, item), result in zip(pending, results, strict=False):
                    self._exchange_result(lease, item, result)
                return answer
        for lease, item in pending:
            self._finish(lease, functools.partial(self._report_v1, item))
        if max_jobs < 1:
            return {"jobs": [], "retry_after_s": 0}
        return self.client.pull(max=max_jobs, providers=self.providers)

    def _long_poll(self, max_jobs: int) -> dict[str, Any]:
        """An idle worker's pull: the server holds it until work comes or its wait ends (docs/API.md,
        "Long poll"), so an idle worker sends about two requests a minute and no heartbeats.

        The call runs on a thread of its own so that stop() never waits for the server's wait: a
        worker told to stop cancels the poll (its connection half-closed, worker_client/cancel.py)
        and goes on stopping; jobs the poll still brings back are released by its thread, which
        `run()` waits for before it ends (`_poll_finish`).
        """
        poll = _Poll(self.client, max_jobs=max_jobs, providers=self.providers,
                     wait_s=self.settings.long_poll_wait_s, stopping=self._stop,
                     abandoned=self._abandoned_release)
        self._poll = poll
        poll.thread.start()
        while not poll.done.wait(0.2):
            if self._stop.is_set() and poll.abandon():
                return {"jobs": [], "retry_after_s": 0}
        self._poll = None
        return poll.result()

    def _poll_finish(self) -> None:
        """At shutdown: cut a waiting long poll short and let its thread give back what it brings."""
        poll, self._poll = self._poll, None
        if poll is None:
            return
        poll.cancel.cancel()
        poll.thread.join(POLL_STOP_GRACE_S)
        if poll.thread.is_alive():
            logger.warning("worker %s: the cancelled long poll did not end within %.0f s; a job it brings "
                           "stays leased until its lease lapses", self.worker_id, POLL_STOP_GRACE_S)

    def _abandoned_release(self, answer: Any) -> None:
        jobs = answer.get("jobs") if isinstance(answer, dict) else None
        ids = [job["attempt_id"] for job in jobs or [] if isinstance(job, dict) and "attempt_id" in job]
        if ids:
            try:
                released = self.client.release(ids).get("released")
            except Exception as exc:  # the leases lapse and the reaper requeues the jobs
                self._note_error("release", exc)
            else:
                self.counters.add("jobs_released", released if isinstance(released, int) else 0)

    def _exchange_result(self, lease: _Lease, item: dict[str, Any], result: Any) -> None:
        """Act on one exchange item's answer exactly as on the v1 report's answer."""
        status = result.get("status") if isinstance(result, dict) else None
        body = result.get("body") if isinstance(result, dict) else None

        def answered() -> None:
            if status != 200:
                raise error_from_response(int(status or 500), json.dumps(body).encode())
            self._report_counted(item)

        self._finish(lease, answered)

    def _report_counted(self, item: Mapping[str, Any]) -> None:
        self.counters.add("reports")
        if item["outcome"] == "failed":
            self.counters.add("jobs_failed")
        else:
            self.counters.add("leads_sent", len(item["leads"]))
            self.counters.add("jobs_done")

    def _report_v1(self, item: Mapping[str, Any]) -> None:
        self.client.report(item["job_id"], item["attempt_id"], item["outcome"], item["leads"],
                           error=item.get("error"), idempotency_key=item["idempotency_key"],
                           log_tail=item.get("log_tail"))
        self._report_counted(item)

    def _report_final(self, lease: _Lease, outcome: str, leads: list[dict[str, Any]],
                      error: dict[str, Any] | None = None, *, log_tail: str | None = None) -> bool:
        """Send a job's final report now (v1), or keep it for the next exchange; True when kept."""
        # One key per report, fixed before the first try: every retry reuses it, which is what makes
        # a retried report count once.
        item: dict[str, Any] = {"job_id": lease.job_id, "idempotency_key": str(uuid.uuid4()),
                                "attempt_id": lease.attempt_id, "outcome": outcome, "leads": leads}
        if error is not None:
            item["error"] = error
        if log_tail:
            item["log_tail"] = log_tail
        if self.use_exchange:
            with self._pending_lock:
                self._pending.append((lease, item))
            return True
        self._report_v1(item)
        return False

    def _pending_flush(self) -> None:
        """At shutdown: send the final reports still waiting, taking no new work."""
        if not self._pending:
            return
        try:
            self._pull(max_jobs=0)
        except ClientError as exc:
            self._note_error("final exchange", exc)

    def _track(self, job: Mapping[str, Any]) -> _Lease:
        try:
            expires_at = parse_timestamp(str(job.get("lease_expires_at")))
        except ValueError:
            # Without a readable expiry, renew soon rather than risk losing the lease.
            expires_at = self.client.server_now() + dt.timedelta(seconds=30)
        return self._renewer.track(int(job["id"]), str(job["attempt_id"]), expires_at)

    def _work(self, job: Mapping[str, Any], lease: _Lease) -> None:
        """Scrape and report one job; every way out of here either finishes, drops or holds it."""
        if self._stop.is_set():
            self.counters.add("jobs_abandoned")
            return  # still held: released at shutdown
        try:
            leads = self.provider.scrape(job.get("payload") or {}, cancel=self._stop)
        except ScrapeCancelled:
            self.counters.add("jobs_abandoned")
            return
        except ScrapeError as exc:
            if exc.screenshot:
                self._evidence_upload(lease, exc.screenshot)
            report = functools.partial(self._report_failure, lease, exc.code, exc.message, exc.log_tail)
        except Exception as exc:
            logger.exception("provider crashed on job %s", lease.job_id)
            message = f"{type(exc).__name__}: {exc}"[:500]
            report = functools.partial(self._report_failure, lease, "worker_error", message)
        else:
            report = functools.partial(self._report_leads, lease, leads)
        self._finish(lease, report)

    def _finish(self, lease: _Lease, report: Callable[[], Any]) -> None:
        kept = False
        try:
            if lease.lost.is_set():
                raise _LeaseLost()
            # True: the report waits for the next exchange, and the lease stays renewed until then.
            kept = report() is True
        except _DROPPED_ERRORS as exc:
            logger.info("dropping job %s: %s", lease.job_id, getattr(exc, "code", "lease_lost"))
            self.counters.add("jobs_dropped")
        except REJECTED_REPORT_ERRORS as exc:
            self._note_error(f"report of job {lease.job_id}", exc)
            self._report_rejected(lease, exc)
        except ClientError as exc:
            # The report could not get through even after retries: stop renewing so the lease
            # lapses and the reaper gives the job to another worker.
            self._note_error(f"report of job {lease.job_id}", exc)
        finally:
            if not kept:
                self._renewer.forget(lease.attempt_id)

    def _report_leads(self, lease: _Lease, leads: list[dict[str, Any]]) -> bool:
        size = self.settings.report_chunk_leads
        chunks = [leads[start:start + size] for start in range(0, len(leads), size)] or [[]]
        for index, chunk in enumerate(chunks):
            if lease.lost.is_set():
                raise _LeaseLost()
            last = index == len(chunks) - 1
            if last:
                return self._report_final(lease, "succeeded", chunk)
            # One key per chunk, fixed before the first try: the client reuses it on every retry,
            # which is what makes a retried chunk count once.
            # A partial chunk goes at once (v1): its answer renews the lease.
            answer = self.client.report(lease.job_id, lease.attempt_id, "partial", chunk,
                                        idempotency_key=str(uuid.uuid4()))
            self.counters.add("reports")
            self.counters.add("leads_sent", len(chunk))
            expires = answer.get("lease_expires_at")
            if isinstance(expires, str):
                self._renewer.update(lease.attempt_id, parse_timestamp(expires))
        return False

    def _report_rejected(self, lease: _Lease, rejected: ProtocolError) -> None:
        """Tell the server that it refused our report, so the job's error says why.

        Letting the lease lapse instead would retry the job until it is dead with nothing but
        `lease_expired` as its reason, which sends an operator looking in the wrong place.
        """
        try:
            message = f"{rejected.status} {rejected.code}: {rejected.message}"[:500]
            self._report_failure(lease, "report_rejected", message)
        except ClientError as exc:
            self._note_error(f"failure report of job {lease.job_id}", exc)

    def _evidence_upload(self, lease: _Lease, screenshot: bytes) -> None:
        """Send the failure's screenshot before its report; never let it stand in the report's way."""
        try:
            self.client.evidence(lease.job_id, lease.attempt_id, screenshot)
            self.counters.add("evidence_sent")
        except ClientError as exc:
            self._note_error(f"evidence of job {lease.job_id}", exc)

    def _report_failure(self, lease: _Lease, code: str, message: str, log_tail: str | None = None) -> bool:
        error = {"code": code, "message": message, "retryable": True}
        return self._report_final(lease, "failed", [], error, log_tail=log_tail)

    # --- config and heartbeat ----------------------------------------------------------------------

    def _config_load(self) -> None:
        try:
            config = self.client.config()
        except ClientError as exc:
            # Start on the defaults; the heartbeat loop loads the config once the server answers.
            self._note_error("config", exc)
            return
        self.settings = WorkerSettings.from_config(config)
        if self.updater is not None:
            # The updater refuses a manifest of any other channel (docs/RELEASES.md).
            self.updater.channel_follow(config)

    def _heartbeat_loop(self) -> None:
        while True:
            forced = self._heartbeat_due.wait(self.settings.heartbeat_interval_s)
            if self._stop.is_set():
                return
            self._heartbeat_due.clear()
            if not forced and self._heartbeat_skippable():
                continue
            try:
                self._heartbeat_send()
            except Exception as exc:  # keep reporting liveness whatever one answer looked like
                logger.exception("heartbeat crashed")
                self._note_error("heartbeat", exc)

    def _heartbeat_skippable(self) -> bool:
        """An answer that stood in for a heartbeat within the interval (a pull or an exchange that
        refreshed this worker's liveness and carried its update target, docs/API.md "Liveness") makes
        this one needless; a full heartbeat still goes out every HEARTBEAT_FULL_S so its status,
        running jobs and metrics stay fresh."""
        now = time.monotonic()
        answered = self.client.last_standin_at
        recent = answered is not None and now - answered < self.settings.heartbeat_interval_s
        full_every = max(HEARTBEAT_FULL_S, self.settings.heartbeat_interval_s)
        return recent and now - self._heartbeat_sent_at < full_every

    def _standin_note(self, answer: Mapping[str, Any]) -> None:
        """A pull or exchange answer that stands in for a heartbeat: act on it as on one."""
        if "update_target" not in answer:
            return
        version = answer.get("config_version")
        if isinstance(version, int) and version != self.settings.config_version:
            self._config_load()
        self._update_target_note(answer.get("update_target"))

    def _update_loop(self) -> None:
        while not self._stop.is_set():
            self._update_due.clear()
            self._update_target_checked = self._update_target
            try:
                outcome = self.updater.check_once()
                if outcome.action == "installed":
                    self.version = self.updater.current_version
                    # Tell the portal now, not a heartbeat interval later: rollouts and their
                    # health gates read the running version from heartbeats.
                    self._heartbeat_due.set()
            except Exception as exc:  # an update problem must never stop the work
                self._note_error("update check", exc)
                # No answer at all (the portal unreachable, a 5xx): ask again at the next heartbeat
                # that names a target, not only after the interval.
                self._update_target_checked = None
            self._update_due.wait(self.settings.update_check_interval_s)

    def _update_target_note(self, target: Any) -> None:
        """Wake the update check when the heartbeat names a release this worker does not run."""
        if self.updater is None:
            return
        if not isinstance(target, dict) or not isinstance(target.get("version"), str):
            self._update_target = None
            return
        key = (target["version"], target.get("sequence"))
        self._update_target = key
        if key[0] != self.version and key != self._update_target_checked:
            self._update_due.set()

    def _heartbeat_send(self, *, final: bool = False) -> None:
        running = 0 if final else len(self._renewer.held())
        status = "stopped" if final else ("busy" if running else "idle")
        self_test = self.updater.last_self_test if self.updater is not None else self.self_test
        try:
            answer = self.client.heartbeat(version=self.version, status=status, running_jobs=running,
                                           metrics=self.counters.snapshot(), self_test=self_test)
        except ClientError as exc:
            self._note_error("heartbeat", exc)
            return
        self.counters.add("heartbeats")
        self._heartbeat_sent_at = time.monotonic()
        if final:
            return
        version = answer.get("config_version")
        if isinstance(version, int) and version != self.settings.config_version:
            self._config_load()
        self._update_target_note(answer.get("update_target"))
        if self.on_heartbeat is not None:
            self.on_heartbeat(answer)

    def _release_held(self) -> None:
        held = self._renewer.held()
        if not held:
            return
        try:
            answer = self.client.release([lease.attempt_id for lease in held])
        except ClientError as exc:
            self._note_error("release", exc)
            return
        released = answer.get("released")
        self.counters.add("jobs_released", released if isinstance(released, int) else 0)
        for lease in held:
            self._renewer.forget(lease.attempt_id)

    def _note_error(self, what: str, exc: BaseException) -> None:
        self.counters.add("errors")
        self.last_error = f"{what}: {exc}"
        level = logging.ERROR if isinstance(exc, (Unauthorized, WorkerDisabled)) else logging.WARNING
        logger.log(level, "worker %s: %s failed: %s", self.worker_id, what, exc)


class _Poll:
    """One long poll on a thread of its own, and who takes its answer: the worker loop, or (when the
    worker stopped first) the poll's thread, which releases the jobs the answer carries."""

    def __init__(self, client: LeadOpsClient, *, max_jobs: int, providers: Sequence[str] | None, wait_s: int,
                 stopping: threading.Event, abandoned: Callable[[Any], None]) -> None:
        self.cancel = PollCancel()
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._owner: str | None = None  # "worker" or "poll": decided once, by whoever comes first
        self._answer: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._call = functools.partial(client.pull, max=max_jobs, providers=providers, wait_s=wait_s,
                                       cancel=self.cancel)
        self._stopping = stopping
        self._abandoned = abandoned
        self.thread = threading.Thread(target=self._run, name=f"long-poll-{client.worker_id}", daemon=True)

    def abandon(self) -> bool:
        """The worker stops: the poll's thread takes the answer, unless the worker already has."""
        with self._lock:
            if self._owner is None:
                self._owner = "poll"
            return self._owner == "poll"

    def result(self) -> dict[str, Any]:
        """The answer, once `done`; an empty one when the poll's thread took it."""
        with self._lock:
            if self._owner == "poll":
                return {"jobs": [], "retry_after_s": 0}
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer

    def _run(self) -> None:
        try:
            self._answer = self._call()
        except BaseException as exc:
            self._error = exc
        try:
            with self._lock:
                if self._owner is None:
                    self._owner = "poll" if self._stopping.is_set() else "worker"
                owner = self._owner
            if owner == "poll":
                self._abandoned(self._answer)
        finally:
            self.done.set()


class _LeaseLost(Exception):
    """The renewer learned that another attempt owns the job now."""


# A report that meets one of these drops the job: another attempt owns it now.
_DROPPED_ERRORS: tuple[type[Exception], ...] = (_LeaseLost, *LEASE_LOST_ERRORS)
