"""python -m worker_client --url URL --worker-id ID --key-id K [--secret S] [--batch N] [--duration S]
   python -m worker_client --url URL --enroll-token T --credentials-file F [...]
   python -m worker_client --url URL --credentials-file F --self-test

Under the supervising agent (`python -m worker_client.agent`, docs/RELEASES.md) this is what a
release's entrypoint runs: `--self-test` loads the code, signs one heartbeat carrying `self_test` and
exits 0; otherwise the worker reports the version of its own release manifest and tells the agent
what every heartbeat answered (worker_client/runtime.py).

The secret is better given in the environment (LEADOPS_WORKER_SECRET) than on the command line,
where other users of the machine can read it in the process list. With --credentials-file, a key
pushed by the server (heartbeat `credentials.pending`) is stored there and used after a restart.
With --enroll-token (or LEADOPS_ENROLLMENT_TOKEN) the worker first exchanges the one-time token for
its credential at POST /api/v1/enroll and stores it in --credentials-file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from worker_client.client import LeadOpsClient, enroll
from worker_client.errors import ClientError
from worker_client.files import write_atomically
from worker_client.provider import SimulatedProvider
from worker_client.runtime import (
    AGENT_HOLD_ENV,
    AGENT_RUNNING_VERSION_ENV,
    AgentLink,
    agent_hold,
    agent_self_test,
    own_manifest,
    own_version,
)
from worker_client.worker import WORKER_VERSION, Worker

SECRET_ENV = "LEADOPS_WORKER_SECRET"
ENROLLMENT_TOKEN_ENV = "LEADOPS_ENROLLMENT_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m worker_client", description="LeadOps reference worker.")
    parser.add_argument("--url", required=True, help="Portal base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--worker-id", help="Worker id (or from --credentials-file).")
    parser.add_argument("--key-id", help="Credential key id (or from --credentials-file).")
    parser.add_argument("--secret", help=f"Credential secret; prefer the {SECRET_ENV} environment variable.")
    parser.add_argument("--credentials-file", type=Path,
                        help='JSON {"worker_id"?, "key_id", "secret"}: read at start, '
                             'rewritten on a pushed key.')
    parser.add_argument("--enroll-token",
                        help=f"One-time enrollment token (prefer {ENROLLMENT_TOKEN_ENV}); "
                             "needs --credentials-file.")
    parser.add_argument("--batch", type=int, default=None, help="Jobs per pull (capped by the server's max).")
    parser.add_argument("--concurrency", type=int, default=None, help="Jobs worked on at once.")
    parser.add_argument("--duration", type=float, default=None, help="Seconds to run (forever when absent).")
    parser.add_argument("--failure-rate", type=float, default=0.05, help="Share of scrapes that fail.")
    parser.add_argument("--leads", default="20-60", help="Leads per job: N or MIN-MAX.")
    parser.add_argument("--seed", type=int, default=None, help="Seed of the simulated provider.")
    parser.add_argument("--delay", default="0.2-1.5", help="Seconds a simulated scrape takes: S or MIN-MAX.")
    parser.add_argument("--provider", choices=("simulated", "browser"), default="simulated",
                        help="simulated: made-up leads; browser: open each job's `url` in Chromium "
                             "(LEADOPS_CHROMIUM or chromium on PATH) and extract the leads of the page.")
    parser.add_argument("--self-test", action="store_true",
                        help="Load the code, sign one heartbeat carrying `self_test`, exit 0 (the agent's "
                             "launch test of a new version).")
    parser.add_argument("--trust-key", action="append", default=[], metavar="KEYID:BASE64",
                        help="A manifest key to trust (manage.py signing_public_key); with --install-dir, "
                             "the worker updates itself (docs/RELEASES.md). Repeat during a key rotation.")
    parser.add_argument("--install-dir", type=Path, default=None,
                        help="Where versions are installed (versions/<version>/) and downloads kept.")
    parser.add_argument("--log-level", default="INFO")
    return parser


def parse_leads_per_job(text: str) -> int | tuple[int, int]:
    low, _, high = text.partition("-")
    if not high:
        return int(low)
    return int(low), int(high)


def parse_delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    bounds = (float(low), float(high or low))
    if not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(text)
    return bounds


def self_test_run(client: LeadOpsClient, version: str) -> int:
    """The launch self-test: this code loads, reads its manifest and signs a heartbeat; 0 when it did.

    The heartbeat reports what runs now (the agent names it), not this version: the portal must not
    believe a version runs before the agent switched to it.
    """
    manifest = own_manifest() or {}
    result: dict[str, Any] = {"version": version, "ok": True, "mode": "launch",
                              "python": ".".join(map(str, sys.version_info[:3])),
                              "entrypoint": manifest.get("entrypoint")}
    running = os.environ.get(AGENT_RUNNING_VERSION_ENV) or version
    try:
        client.heartbeat(version=running, status="self_test", running_jobs=0, self_test=result)
    except ClientError as exc:
        print(json.dumps({"self_test": {**result, "ok": False, "error": str(exc)[:300]}}))
        return 1
    print(json.dumps({"self_test": result}))
    return 0


def load_credentials(args: argparse.Namespace) -> tuple[str, str, str]:
    """(worker_id, key_id, secret) from the arguments, the environment or the credentials file."""
    worker_id, key_id, secret = args.worker_id, args.key_id, args.secret or os.environ.get(SECRET_ENV)
    if args.credentials_file and args.credentials_file.exists():
        stored = json.loads(args.credentials_file.read_text())
        key_id, secret = stored["key_id"], stored["secret"]
        worker_id = worker_id or stored.get("worker_id")
    if not worker_id or not key_id or not secret:
        raise SystemExit(f"error: give --worker-id, --key-id and the secret ({SECRET_ENV} or --secret), "
                         "or --credentials-file, or --enroll-token")
    return worker_id, key_id, secret


def enroll_into(url: str, token: str, path: Path) -> str:
    """Spend the enrollment token and store the credential; return the worker id."""
    credential = enroll(url, token)
    credentials_writer(path, worker_id=credential["worker_id"])(credential["key_id"], credential["secret"])
    return credential["worker_id"]


def credentials_writer(path: Path, *, worker_id: str | None = None) -> Callable[[str, str], None]:
    """Store a pushed key atomically (write, fsync, rename), readable by this user only."""

    def write(key_id: str, secret: str) -> None:
        stored = {"key_id": key_id, "secret": secret}
        if worker_id:
            stored = {"worker_id": worker_id, **stored}
        write_atomically(path, json.dumps(stored))

    return write


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    if args.batch is not None and not 1 <= args.batch <= 50:
        raise SystemExit("error: --batch must be between 1 and 50")
    if not 0.0 <= args.failure_rate <= 1.0:
        raise SystemExit("error: --failure-rate must be between 0 and 1")
    try:
        leads_per_job = parse_leads_per_job(args.leads)
    except ValueError:
        raise SystemExit("error: --leads must be N or MIN-MAX") from None
    try:
        delay_s = parse_delay(args.delay)
    except ValueError:
        raise SystemExit("error: --delay must be S or MIN-MAX seconds") from None
    token = args.enroll_token or os.environ.get(ENROLLMENT_TOKEN_ENV)
    if token:
        if not args.credentials_file:
            raise SystemExit("error: --enroll-token needs --credentials-file to keep the credential")
        if not args.credentials_file.exists():
            enroll_into(args.url, token, args.credentials_file)
    worker_id, key_id, secret = load_credentials(args)
    on_credentials = (credentials_writer(args.credentials_file, worker_id=worker_id)
                      if args.credentials_file else None)
    client = LeadOpsClient(args.url, worker_id, key_id, secret, on_credentials=on_credentials)
    version = own_version(WORKER_VERSION)
    if args.self_test:
        with client:
            return self_test_run(client, version)
    provider: Any
    if args.provider == "browser":
        from worker_client.browser import BrowserProvider

        provider = BrowserProvider()
    else:
        provider = SimulatedProvider(rng=random.Random(args.seed), failure_rate=args.failure_rate,
                                     leads_per_job=leads_per_job, delay_s=delay_s)
    updater = None
    if args.trust_key or args.install_dir:
        if not (args.trust_key and args.install_dir):
            raise SystemExit("error: self-update needs both --trust-key and --install-dir")
        from worker_client.updater import Updater, trusted_keys_from

        try:
            trusted = trusted_keys_from(dict(entry.split(":", 1) for entry in args.trust_key))
        except ValueError as exc:
            raise SystemExit(f"error: --trust-key: {exc}") from None
        updater = Updater(client, root=args.install_dir, trusted_keys=trusted, current_version=WORKER_VERSION)
    worker = Worker(client, provider, batch=args.batch, concurrency=args.concurrency, updater=updater,
                    version=updater.current_version if updater else version, self_test=agent_self_test())
    def agent_lost() -> None:
        worker.stop(timeout=0)

    link = AgentLink.from_environment(on_lost=agent_lost)
    if link is not None:
        worker.on_heartbeat = lambda answer: link.heartbeat(answer, version=worker.version)
    if os.environ.get(AGENT_HOLD_ENV):
        # Held by the agent while the previous version drains: code loaded, configuration read; the
        # work (and the first heartbeat with this version) starts on the agent's word.
        worker.prepare()
        agent_hold()
        if args.credentials_file is not None:
            # Held as a standby, perhaps for long: sign with the key stored last (a pushed one).
            stored = json.loads(args.credentials_file.read_text())
            if stored.get("key_id") and stored["key_id"] != client.key_id:
                client.use_credentials(stored["key_id"], stored["secret"])

    def request_stop(signum: int, frame: Any) -> None:
        worker.stop(timeout=0)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        with client:
            worker.run(duration=args.duration)
    finally:
        close = getattr(provider, "close", None)
        if close is not None:
            close()
    if link is not None:
        link.send("stopped", summary=worker.summary())
        link.close()
    print(json.dumps(worker.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
