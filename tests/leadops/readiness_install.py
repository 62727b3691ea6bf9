"""Drive an installation's readiness through the real commands (shared by the readiness tests)."""

from __future__ import annotations

import datetime as dt
import json

from django.core.management import call_command
from django.utils import timezone

from tests.factories import make_worker
from tests.log_guard import remember_secret
from tests.releases_app.builders import tar_artifact
from tests.signing import SignedClient
from workers_mgmt.models import WorkerCredential


def readiness_json(capsys) -> tuple[int, dict]:
    """`readiness --json`: (its exit code, its answer)."""
    capsys.readouterr()
    try:
        call_command("readiness", "--json")
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads(capsys.readouterr().out)


def publish(tmp_path, version: str) -> None:
    artifact = tmp_path / f"worker-{version}.tar.gz"
    artifact.write_bytes(tar_artifact(version))
    call_command("release_publish", "--version", version, "--file", str(artifact))


def roll_out(channel: str, version: str, canary: str) -> None:
    """rollout_start with a canary, then rollout_promote until the rollout is done."""
    from releases_app.models import Rollout

    call_command("rollout_start", "--version", version, "--channel", channel, "--canary", canary)
    while Rollout.objects.active().filter(channel__name=channel, release__version=version).exists():
        call_command("rollout_promote", "--channel", channel)


def rotate_and_use(client, worker_id: str, old_key_id: str, old_secret: str) -> SignedClient:
    """rotate_worker_secret (push); the worker's heartbeat fetches the key, its next request promotes it."""
    call_command("rotate_worker_secret", worker_id)
    old = SignedClient(client, worker_id=worker_id, key_id=old_key_id, secret=old_secret)
    answer = old.request("POST", "/api/v1/heartbeat", {"version": "1.0.0", "status": "idle", "running_jobs": 0})
    assert answer.status_code == 200, answer.content
    pending = answer.json()["credentials"]["pending"]
    remember_secret(pending["secret"])
    new = SignedClient(client, worker_id=worker_id, key_id=pending["key_id"], secret=pending["secret"])
    assert new.request("GET", "/api/v1/config").status_code == 200
    return new


def ready_installation(client, tmp_path, receiver_url: str) -> tuple[SignedClient, list[str]]:
    """A pilot worker, a provider with jobs and every gate made to hold; (its client, secrets seen)."""
    _, issued = make_worker(worker_id="pilot-1", channel="stable")
    WorkerCredential.objects.filter(worker_id="pilot-1").update(
        created_at=timezone.now() - dt.timedelta(days=100))
    call_command("enqueue_jobs", "--provider", "maps", "--count", "3")
    worker = rotate_and_use(client, "pilot-1", issued.key_id, issued.secret)
    publish(tmp_path, "1.0.0")
    roll_out("stable", "1.0.0", canary="pilot-1")
    call_command("alert_receiver_set", "ops", "--webhook", receiver_url)
    call_command("alert_test", "ops")
    call_command("alerts_evaluate", "--once")
    call_command("purge_retention")
    call_command("provider_set", "maps", "--quota-per-min", "60")
    return worker, [issued.secret, worker.secret]
