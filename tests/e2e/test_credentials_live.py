"""End to end: push rotation and enrollment with reference workers against a live daphne portal."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from queueing.models import Job, JobState
from tests.e2e.conftest import wait_until
from tests.e2e.servers import log_of
from tests.factories import make_jobs, make_provider, make_worker
from worker_client.client import LeadOpsClient, enroll
from worker_client.errors import Unauthorized
from worker_client.provider import SimulatedProvider
from worker_client.worker import Worker as ReferenceWorker
from workers_mgmt.models import CredentialEvent, CredentialState, WorkerConfig, WorkerCredential
from workers_mgmt.services import credential_rotate, worker_create_for_enrollment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(__file__).resolve().parents[2]


def test_five_workers_keep_working_while_all_are_rotated_by_push(worker_api_url, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    # Heartbeat every second so the push arrives quickly (the admin form's minimum is 5 s).
    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": 1, "poll_interval_s": 1})
    make_jobs(40, provider=make_provider("maps"))
    workers, old_keys = [], {}
    for i in range(5):
        worker, issued = make_worker(worker_id=f"rot-{i}", rate_limit_per_min=100_000)
        old_keys[worker.pk] = issued.key_id
        client = LeadOpsClient(worker_api_url, issued.worker_id, issued.key_id, issued.secret, timeout=10)
        provider = SimulatedProvider(rng=random.Random(i), leads_per_job=(2, 5), delay_s=0.05)
        workers.append((worker, ReferenceWorker(client, provider, batch=2)))
    for _, reference in workers:
        reference.start()
    try:
        assert wait_until(lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() >= 5, timeout=60)
        rotations = {worker.pk: credential_rotate(worker=worker, actor="e2e") for worker, _ in workers}
        new_keys = {worker_id: issued.key_id for worker_id, issued in rotations.items()}

        def all_promoted() -> bool:
            return (WorkerCredential.objects.filter(key_id__in=new_keys.values(),
                                                    state=CredentialState.CURRENT).count() == 5
                    and all(ref.client.key_id == new_keys[w.pk] for w, ref in workers))

        assert wait_until(all_promoted, timeout=60)
        assert wait_until(lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == 40, timeout=90)
    finally:
        for _, reference in workers:
            reference.stop(timeout=30)
    summaries = [reference.summary() for _, reference in workers]
    assert sum(s["failed_requests"] for s in summaries) == 0, summaries
    assert all(s["requests"] > 5 for s in summaries), summaries
    for worker, _ in workers:
        states = dict(WorkerCredential.objects.filter(worker=worker).values_list("key_id", "state"))
        assert states == {old_keys[worker.pk]: "previous", new_keys[worker.pk]: "current"}
        kinds = sorted(CredentialEvent.objects.filter(key_id=new_keys[worker.pk]).values_list("kind", flat=True))
        assert kinds == ["created", "delivered", "promoted", "verified"]
    assert not CredentialEvent.objects.filter(kind="auth_failed").exists()
    # The pushed secrets crossed the wire but reached no log: not the workers', not the portal's.
    assert "switched to pushed key" in caplog.text
    server_log = log_of(worker_api_url).read_text(errors="replace")
    for issued in rotations.values():
        assert issued.secret not in caplog.text and issued.secret not in server_log


def test_a_worker_enrolls_with_its_token_once_and_then_works(worker_api_url, tmp_path):
    _, issued = worker_create_for_enrollment(worker_id="enrolled-1", actor="e2e")
    credentials = tmp_path / "credentials.json"
    result = subprocess.run(
        [sys.executable, "-m", "worker_client", "--url", worker_api_url, "--credentials-file", str(credentials),
         "--duration", "2", "--log-level", "WARNING"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "LEADOPS_ENROLLMENT_TOKEN": issued.token},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["worker_id"] == "enrolled-1" and summary["failed_requests"] == 0
    stored = json.loads(credentials.read_text())
    assert stored["worker_id"] == "enrolled-1"
    assert WorkerCredential.objects.get(key_id=stored["key_id"]).state == CredentialState.CURRENT
    assert issued.token not in result.stdout + result.stderr and stored["secret"] not in result.stderr

    with pytest.raises(Unauthorized):
        enroll(worker_api_url, issued.token)

    # A push rotation reaches the same worker after a restart: it stores the pushed key in its
    # credentials file, switches, and the server promotes it, without one failed request.
    from workers_mgmt.models import Worker

    pushed = credential_rotate(worker=Worker.objects.get(pk="enrolled-1"), actor="e2e")
    again = subprocess.run(
        [sys.executable, "-m", "worker_client", "--url", worker_api_url, "--credentials-file", str(credentials),
         "--duration", "2", "--log-level", "WARNING"],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["failed_requests"] == 0
    assert json.loads(credentials.read_text()) == {"worker_id": "enrolled-1", "key_id": pushed.key_id,
                                                   "secret": pushed.secret}
    assert WorkerCredential.objects.get(key_id=pushed.key_id).state == CredentialState.CURRENT
    assert pushed.secret not in again.stdout + again.stderr


def database_dump() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        connection.ensure_connection()
        return "\n".join(connection.connection.iterdump())
    settings_dict = connection.settings_dict
    result = subprocess.run(
        ["pg_dump", "--data-only", "-h", settings_dict.get("HOST") or "127.0.0.1",
         "-p", str(settings_dict.get("PORT") or 5432), "-U", settings_dict.get("USER") or "postgres",
         settings_dict["NAME"]],
        capture_output=True, text=True, timeout=120, check=True,
    )
    return result.stdout


def test_no_secret_in_plain_text_in_the_database_dump_or_the_logs(worker_api_url, caplog):
    import logging

    from django.core.management import call_command

    from workers_mgmt.models import Worker
    from workers_mgmt.services import credential_rotate_emergency, enrollment_exchange

    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    worker, issued = make_worker(worker_id="dump-1")
    secrets.append(issued.secret)
    client = LeadOpsClient(worker_api_url, issued.worker_id, issued.key_id, issued.secret, timeout=10)
    # Push rotation end to end: the pushed secret crosses the wire, the client switches to it.
    pushed = credential_rotate(worker=worker, actor="e2e")
    secrets.append(pushed.secret)
    answer = client.heartbeat(version="1", status="idle", running_jobs=0)
    assert answer["credentials"] == {"pending": {"key_id": pushed.key_id}}  # the secret is not handed on
    client.config()
    assert WorkerCredential.objects.get(key_id=pushed.key_id).state == CredentialState.CURRENT
    # A wrong secret, a manual and an emergency rotation, an enrollment.
    bad = LeadOpsClient(worker_api_url, issued.worker_id, pushed.key_id, "wrong-secret-xyz", timeout=10)
    with pytest.raises(Unauthorized):
        bad.config()
    client.close()
    bad.close()
    secrets.append(credential_rotate(worker=worker, actor="e2e", mode="manual").secret)
    secrets.append(credential_rotate_emergency(worker=worker, actor="e2e").secret)
    _, enrollment = worker_create_for_enrollment(worker_id="dump-2", actor="e2e")
    secrets.append(enrollment.token)
    secrets.append(enrollment_exchange(token=enrollment.token).secret)
    call_command("reencrypt_secrets", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert Worker.objects.count() == 2

    dump = database_dump()
    assert "workers_mgmt_workercredential" in dump and len(dump) > 1000
    server_log = log_of(worker_api_url).read_text(errors="replace")
    assert "worker auth refused" in server_log  # the log was written, and is the portal's
    logs = caplog.text
    for secret in secrets:
        assert secret not in dump
        assert secret not in server_log
        assert secret not in logs
