"""`make run`: the whole portal on its embedded defaults, in one command.

Migrates, creates a demo staff login, seeds the living demo (leadops/demo.py: a demo inbox receiver
and route, a recurring campaign, a flaky provider), then starts daphne, the django-q2 cluster, the
alert evaluator, three simulated workers and the demo loop. It also publishes the reference worker as
a demo release and rolls it out on the channel `demo` to three demo workers that run under the
supervising agent (`python -m worker_client.agent`): each runs the release it installed as a child
process and restarts into the next one, so a newcomer sees a rollout move in Admin › Rollouts and
the workers' versions change (docs/RELEASES.md, "The supervising agent"). It seeds a realistic Go/No-Go
picture on Admin › Readiness (docs/PRODUCTION_READINESS.md).

Ctrl-C or SIGTERM stops every process it started within 10 s, SIGKILL for what does not stop in
time; a second signal never interrupts that (leadops/supervise.py). It refuses to start when its
port (PORT, default 8000) is taken, and says by what.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from leadops.supervise import Child, Signals, StopRequested, port_taken_message, stop_all

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = os.environ.get("LEADOPS_HOST", "127.0.0.1")
# `make run PORT=8001` (LEADOPS_PORT is the older name, still read).
PORT = int(os.environ.get("PORT") or os.environ.get("LEADOPS_PORT") or "8000")
WORKERS = int(os.environ.get("LEADOPS_DEMO_WORKERS", "3"))
DEMO_PROVIDER = "demo-maps"


def _development_mode() -> None:
    # DEBUG defaults to off; the demo is development, and every process it starts inherits this.
    os.environ.setdefault("DEBUG", "true")


def manage(*args: str) -> None:
    _development_mode()
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")
    _development_mode()
    import django

    django.setup()


def demo_login() -> tuple[str, str]:
    from django.contrib.auth import get_user_model

    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return "admin", password


def demo_readiness_seed() -> list[tuple[str, bool, str]]:
    """Give the demo a realistic Go/No-Go picture: what a pilot has done holds, the rest says why.

    The demo provider gets a quota and the retention purge runs once (the q cluster runs it daily);
    no alert receiver is set and the demo channel's rollout is still running, so `alerts` and
    `updates` stay no-go with their reasons on Admin › Readiness. Returns (gate, holds, why).
    """
    from leadops.demo import demo_actor
    from leadops.readiness import last_purge_at, readiness_check, readiness_record
    from leadops.retention import retention_purge
    from queueing.models import Provider
    from queueing.services import provider_policy_set

    provider = Provider.objects.filter(name=DEMO_PROVIDER).first()
    if provider is not None and not (provider.quota_per_min or provider.daily_cap):
        provider_policy_set(name=DEMO_PROVIDER, quota_per_min=600, quota_burst=20,
                            actor=demo_actor())
    if last_purge_at() is None:
        retention_purge(actor=demo_actor())
    readiness = readiness_check()
    readiness_record(readiness=readiness)
    return [(gate.name, gate.ok, gate.why) for gate in readiness.gates]


UPDATERS = 3
DEMO_WORKERS_DIR = BASE_DIR / "storage" / "demo-workers"


def demo_updaters() -> list[tuple[str, str, str]]:
    """The updating demo workers (channel `demo`), each with a fresh key: (worker id, key id, secret)."""
    from leadops.demo import demo_actor
    from workers_mgmt.models import Worker
    from workers_mgmt.services import worker_create, worker_credential_issue

    credentials = []
    for index in range(1, UPDATERS + 1):
        worker_id = f"demo-updater-{index}"
        worker = Worker.objects.filter(pk=worker_id).first()
        if worker is None:
            _, issued = worker_create(worker_id=worker_id, channel="demo", actor=demo_actor())
            credentials.append((worker_id, issued.key_id, issued.secret))
        else:
            credential, secret = worker_credential_issue(worker=worker, actor=demo_actor())
            credentials.append((worker_id, credential.key_id, secret))
    return credentials


def agent_command(url: str, worker_id: str, key_id: str, secret: str) -> list[str]:
    """The command line of one demo worker's supervising agent; its credential goes to its folder.

    The folder starts empty: what an agent remembers from an earlier `make run` (the highest manifest
    sequence seen, a release whose self-test failed) may belong to another database, and would make
    it refuse this run's manifests.
    """
    from releases_app.signing import signing_keys
    from worker_client.__main__ import credentials_writer

    root = DEMO_WORKERS_DIR / worker_id
    shutil.rmtree(root, ignore_errors=True)
    credentials = root / "credentials.json"
    credentials_writer(credentials, worker_id=worker_id)(key_id, secret)  # mode 0600, atomically
    trust = [argument for key in signing_keys()
             for argument in ("--trust-key", f"{key.key_id}:{key.public_b64}")]
    return [sys.executable, "-m", "worker_client.agent", "--url", url, "--install-dir", str(root), *trust,
            "--credentials-file", str(credentials), "--", "--batch", "2", "--concurrency", "2",
            "--log-level", "WARNING"]


def demo_release_artifact(version: str) -> bytes:
    """The reference worker as a release (what `make worker-release VERSION=...` builds)."""
    from worker_client.release import build

    return build(version)


def wait_for_port(host: str, port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.2)
    return False


def main() -> int:
    taken = port_taken_message(HOST, PORT)
    if taken:
        print(taken, file=sys.stderr)
        return 2
    signals = Signals()
    signals.install()
    children: list[Child] = []
    try:
        return run(children)
    except StopRequested:
        return 0
    finally:
        signals.begin_stop()
        if children:
            print("Stopping every process make run started...", file=sys.stderr, flush=True)
            killed = stop_all(children)
            if killed:
                print(f"Killed (did not stop in time): {', '.join(killed)}", file=sys.stderr, flush=True)


def run(children: list[Child]) -> int:
    manage("migrate", "--noinput", "-v", "0")
    setup_django()
    from django.db import connections

    username, password = demo_login()
    from leadops.demo import demo_jobs_top_up, demo_setup

    demo_setup()
    demo_jobs_top_up()
    from releases_app.demo import demo_rollout_seed

    updaters = demo_updaters()
    demo_rollout = demo_rollout_seed(canary=updaters[0][0], artifact=demo_release_artifact)
    gates = demo_readiness_seed()
    connections.close_all()

    def start(name: str, *args: str, worker: bool = False) -> None:
        # Each child gets its own process group so one stop reaches it and everything it forked.
        children.append(Child(name, subprocess.Popen(args, cwd=BASE_DIR, start_new_session=True), worker))

    access_log = BASE_DIR / "storage" / "logs" / "access.log"
    access_log.parent.mkdir(parents=True, exist_ok=True)
    start("daphne", sys.executable, "-m", "daphne", "-b", HOST, "-p", str(PORT),
          "--access-log", str(access_log), "leadops.asgi:application")
    if not wait_for_port(HOST, PORT):
        print("daphne did not start; see the output above.", file=sys.stderr)
        return 1
    start("qcluster", sys.executable, "manage.py", "qcluster")
    # The alert evaluator runs every 10 s, more often than django-q2 schedules can (docs/DEPLOY.md).
    start("alerts_evaluate", sys.executable, "manage.py", "alerts_evaluate")
    start("simulate_fleet", sys.executable, "manage.py", "simulate_fleet", "--url", f"http://{HOST}:{PORT}",
          "--workers", str(WORKERS), worker=True)
    for credentials in updaters:
        start(f"agent {credentials[0]}", *agent_command(f"http://{HOST}:{PORT}", *credentials), worker=True)
    # The flaky provider, its dead jobs and breaker, and the work top-up (leadops/demo.py).
    start("demo_loop", sys.executable, "manage.py", "demo_loop")
    print(
        f"\nLeadOps is running: http://{HOST}:{PORT}/admin/\n"
        f"  login: {username} / {password}\n"
        f"  {WORKERS} simulated workers are pulling jobs of provider '{DEMO_PROVIDER}'.\n"
        + (f"  A demo release ({demo_rollout.release.version}) is rolling out on channel 'demo': "
           f"/admin/releases_app/rollout/{demo_rollout.pk}/change/\n" if demo_rollout else "")
        + f"  {UPDATERS} demo workers run it under the agent; publish another and watch them restart:\n"
          "    make worker-release VERSION=demo-2.0.0 && .venv/bin/python manage.py release_publish "
          "--version demo-2.0.0 --file dist/leadops-worker-demo-2.0.0.tar.gz\n"
          "    .venv/bin/python manage.py rollout_start --version demo-2.0.0 --channel demo\n"
        + "  A flaky provider fills the DLQ and opens its breaker every few minutes; its alerts arrive in\n"
          f"  the demo inbox: http://{HOST}:{PORT}/admin/alerts/demomessage/\n"
        + f"  Readiness: {sum(ok for _, ok, _ in gates)} of {len(gates)} gates hold "
        f"(not yet: {', '.join(name for name, ok, _ in gates if not ok) or 'none'}): "
        f"http://{HOST}:{PORT}/admin/readiness/\n"
        + "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    while True:
        time.sleep(1)
        stopped = [child.name for child in children if child.process.poll() is not None]
        if stopped:
            print(f"{', '.join(stopped)} stopped; shutting down the rest.", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())
