"""`make run`: the whole portal on its embedded defaults, in one command.

Migrates, creates a demo staff login, seeds a demo campaign, then starts daphne, the django-q2
cluster and three simulated workers. Ctrl-C (or SIGTERM) stops every process it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = os.environ.get("LEADOPS_HOST", "127.0.0.1")
PORT = int(os.environ.get("LEADOPS_PORT", "8000"))
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


def top_up_demo_jobs(minimum: int = 30) -> int:
    """Keep some work in the demo queue, enqueued through a campaign like staff would.

    A newcomer then sees the campaign's progress bar move and the staff-action trail fill
    (Campaigns and Kernel > Staff actions in admin).
    """
    from django.contrib.auth import get_user_model

    from core.audit import Actor
    from queueing.models import Campaign, Job, JobState
    from queueing.services import campaign_create, campaign_enqueue, provider_get_or_create

    provider = provider_get_or_create(name=DEMO_PROVIDER)
    if Job.objects.filter(provider=provider, state=JobState.QUEUED).count() >= minimum:
        return 0
    admin = get_user_model().objects.filter(username="admin").first()
    actor = Actor.from_user(admin) if admin else Actor.command("devserver")
    number = Campaign.objects.filter(provider=provider).count() + 1
    campaign = campaign_create(campaign=Campaign(
        name=f"Demo campaign {number}", provider=provider,
        queries="\n".join(["مطعم", "coffee shop", "صيدلية", "car repair", "بقالة", "dentist"]),
        cities="\n".join(["Riyadh", "جدة", "Dammam", "مكة", "Medina"]),
    ), actor=actor)
    return campaign_enqueue(campaign=campaign, actor=actor)


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
    manage("migrate", "--noinput", "-v", "0")
    setup_django()
    from django.db import connections

    username, password = demo_login()
    top_up_demo_jobs()
    connections.close_all()

    children: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        # Each child gets its own process group so one Ctrl-C stops it and everything it forked.
        child = subprocess.Popen(args, cwd=BASE_DIR, start_new_session=True)
        children.append(child)
        return child

    def stop_all(*_: object) -> None:
        # Newest first: the simulated workers release their leases while daphne still answers.
        for child in reversed(children):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        access_log = BASE_DIR / "storage" / "logs" / "access.log"
        access_log.parent.mkdir(parents=True, exist_ok=True)
        start(sys.executable, "-m", "daphne", "-b", HOST, "-p", str(PORT), "--access-log", str(access_log),
              "leadops.asgi:application")
        if not wait_for_port(HOST, PORT):
            print("daphne did not start; see the output above.", file=sys.stderr)
            return 1
        start(sys.executable, "manage.py", "qcluster")
        start(sys.executable, "manage.py", "simulate_fleet", "--url", f"http://{HOST}:{PORT}",
              "--workers", str(WORKERS))
        print(
            f"\nLeadOps is running: http://{HOST}:{PORT}/admin/\n"
            f"  login: {username} / {password}\n"
            f"  {WORKERS} simulated workers are pulling jobs of provider '{DEMO_PROVIDER}'.\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while True:
            time.sleep(30)
            if any(child.poll() is not None for child in children):
                print("A process stopped; shutting down the rest.", file=sys.stderr)
                return 1
            top_up_demo_jobs()
            connections.close_all()
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
