"""simulate_fleet --url URL --workers N [--duration S] [--batch B] [--failure-rate F] [--prefix sim]

Runs N reference workers (worker_client) in threads against a running portal. Being a Django
command, it ensures the simulated workers exist in the database and gives each one a fresh key
first; the workers themselves only speak the signed HTTP protocol, exactly as a real fleet does.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import connection as db_connection

from core.commands import OneLineErrorCommand
from worker_client.client import LeadOpsClient
from worker_client.provider import SimulatedProvider
from worker_client.worker import Worker as ReferenceWorker
from workers_mgmt.models import Worker, worker_id_validator
from workers_mgmt.services import worker_create, worker_credential_issue

MAX_WORKERS = 1000


class Command(OneLineErrorCommand):
    help = "Run N simulated reference workers against a running portal (Ctrl-C or SIGTERM stops them)."

    def add_arguments(self, parser):
        # Values are parsed in handle(), not by argparse, so that a bad one ends in the one-line
        # error of docs/RUNBOOK.md, "Management commands" rather than argparse's usage block.
        parser.add_argument("--url", help="Base URL of the portal, e.g. http://127.0.0.1:8000")
        parser.add_argument("--workers", help="How many workers to run (1..1000).")
        parser.add_argument("--duration", help="Seconds to run; forever when absent.")
        parser.add_argument("--batch", help="Jobs per pull (1..50); the server's max_batch when absent.")
        parser.add_argument("--failure-rate", dest="failure_rate", default="0.05",
                            help="Share of simulated scrapes that fail (0..1).")
        parser.add_argument("--prefix", default="sim", help="Worker ids are PREFIX-1 .. PREFIX-N.")
        parser.add_argument("--leads", default="5-40", help="Leads per job: N or MIN-MAX.")
        parser.add_argument("--scrape-delay", dest="scrape_delay", default="0.2-1.5",
                            help="Simulated seconds per scrape: S or MIN-MAX.")
        parser.add_argument("--seed", help="Seed of the simulated providers (reproducible leads).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] < 2:
            # httpx logs every request at INFO: N busy workers would drown the portal's own log.
            logging.getLogger("httpx").setLevel(logging.WARNING)
        url = _url(options["url"])
        count = _int(options["workers"], "--workers", 1, MAX_WORKERS, required=True)
        duration = _float(options["duration"], "--duration", minimum=0.001)
        batch = _int(options["batch"], "--batch", 1, 50)
        failure_rate = _float(options["failure_rate"], "--failure-rate", minimum=0.0, maximum=1.0)
        leads_per_job = _range(options["leads"], "--leads", cast=int)
        scrape_delay = _range(options["scrape_delay"], "--scrape-delay", cast=float)
        seed = _int(options["seed"], "--seed", 0, 2**63)
        prefix = _prefix(options["prefix"], count)  # type: ignore[arg-type]

        workers = [
            self._reference_worker(
                url=url, worker_id=f"{prefix}-{index}", batch=batch,
                provider=SimulatedProvider(
                    rng=random.Random(None if seed is None else seed + index), failure_rate=failure_rate,  # type: ignore[arg-type]
                    leads_per_job=leads_per_job, delay_s=scrape_delay,
                ),
            )
            for index in range(1, count + 1)  # type: ignore[operator]
        ]
        self.stdout.write(f"simulate_fleet: {count} workers against {url}"
                          + (f" for {duration:g}s" if duration else " until Ctrl-C"))
        # The workers speak HTTP only; no database connection needs to stay open while they run.
        db_connection.close()
        self._run(workers, duration)
        for worker in workers:
            worker.client.close()
            self.stdout.write(_summary_line(worker))

    def _reference_worker(self, *, url: str, worker_id: str, batch: int | None,
                          provider: SimulatedProvider) -> ReferenceWorker:
        key_id, secret = _credentials(worker_id)
        client = LeadOpsClient(url, worker_id, key_id, secret)
        return ReferenceWorker(client, provider, batch=batch)

    def _run(self, workers: list[ReferenceWorker], duration: float | None) -> None:
        stop = threading.Event()
        restore = _on_signals(stop.set)
        try:
            for worker in workers:
                worker.start()
            deadline = None if duration is None else time.monotonic() + duration
            # Waiting in short steps keeps the main thread responsive to signals.
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if not any(worker.running for worker in workers):
                    break
                stop.wait(0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic())))
        finally:
            # From here a second Ctrl-C or SIGTERM acts as usual and ends the process at once.
            restore()
            # Ask every worker first, then wait: they release their leases in parallel.
            for worker in workers:
                worker.stop(timeout=0)
            for worker in workers:
                if not worker.stop(timeout=60):
                    self.stderr.write(f"{worker.worker_id}: did not stop within 60 s")


def _credentials(worker_id: str) -> tuple[str, str]:
    """Ensure the simulated worker exists and return a fresh (key id, secret) for it."""
    worker = Worker.objects.filter(pk=worker_id).first()
    if worker is None:
        try:
            _, issued = worker_create(worker_id=worker_id, name=f"Simulated {worker_id}")
        except ValidationError as exc:
            raise CommandError(f"Cannot create worker {worker_id!r}: {'; '.join(exc.messages)}") from None
        return issued.key_id, issued.secret
    if not worker.enabled:
        raise CommandError(f"Worker {worker_id!r} is disabled; enable it or use another --prefix.")
    # A fresh key each run: the plain secret of an older key is stored nowhere to be reused.
    credential, secret = worker_credential_issue(worker=worker)
    return credential.key_id, secret


def _on_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to `handler`; return a function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # only the main thread may install signal handlers (e.g. in tests)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda signum, frame: handler())

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _summary_line(worker: ReferenceWorker) -> str:
    s = worker.summary()
    line = (f"{s['worker_id']}: jobs done={s['jobs_done']} failed={s['jobs_failed']} "
            f"dropped={s['jobs_dropped']} released={s['jobs_released']} leads sent={s['leads_sent']} "
            f"requests={s['requests']} failed requests={s['failed_requests']} errors={s['errors']}")
    if worker.last_error:
        line += f" last error: {worker.last_error}"
    return line


# --- argument parsing: one-line errors -------------------------------------------------------------


def _url(value: str | None) -> str:
    if not value:
        raise CommandError("--url is required (the portal's base URL, e.g. http://127.0.0.1:8000).")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"--url must be an http(s) URL, not {value!r}.")
    return value.rstrip("/")


def _int(value: str | None, name: str, minimum: int, maximum: int, *, required: bool = False) -> int | None:
    if value is None:
        if required:
            raise CommandError(f"{name} is required.")
        return None
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{name} must be a whole number, not {value!r}.") from None
    if not minimum <= number <= maximum:
        raise CommandError(f"{name} must be between {minimum} and {maximum}.")
    return number


def _float(value: str | None, name: str, *, minimum: float, maximum: float | None = None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise CommandError(f"{name} must be a number, not {value!r}.") from None
    if number != number or number < minimum or (maximum is not None and number > maximum):  # NaN too
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise CommandError(f"{name} must be {bounds}.")
    return number


def _range(value: str, name: str, *, cast: Callable[[str], Any]) -> Any:
    """N or MIN-MAX, both non-negative."""
    low, _, high = value.partition("-")
    try:
        bounds = (cast(low), cast(high)) if high else cast(low)
    except ValueError:
        raise CommandError(f"{name} must be N or MIN-MAX, not {value!r}.") from None
    values = bounds if isinstance(bounds, tuple) else (bounds,)
    if any(v < 0 for v in values) or (isinstance(bounds, tuple) and bounds[0] > bounds[1]):
        raise CommandError(f"{name} must be N or MIN-MAX with 0 <= MIN <= MAX, not {value!r}.")
    return bounds


def _prefix(value: str, count: int) -> str:
    try:
        worker_id_validator(f"{value}-{count}")
    except ValidationError:
        raise CommandError(f"--prefix {value!r} does not make valid worker ids (lower-case letters, digits, "
                           "'-' or '_', starting with a letter or digit, at most 63 characters).") from None
    return value
