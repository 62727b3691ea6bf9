"""Fill the database of DATABASE_URL with every kind of row a portal holds; print a worker's credential.

`python -m tests.leadops.move_fill` (the move test runs it against a fresh SQLite file). The job path
goes through the real API in-process (signed pulls, reports, a heartbeat), the rest through the
services staff use: workers with encrypted secrets and a rotation (audit), jobs, attempts, leads,
fingerprints, counters and receipts, a release with a rollout, alerts with a silence and a delivery,
the suppression list and an erasure (audit), a staff user.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadops.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from alerts.services import evaluator_tick, receiver_set, silence_create
    from core.audit import Actor
    from ingestion.privacy import privacy_erase, suppression_add
    from queueing.services import jobs_enqueue
    from releases_app.services import release_publish, rollout_start
    from tests.alerts.factories import silent_workers
    from tests.factories import make_provider, make_worker
    from tests.releases_app.builders import tar_artifact
    from tests.signing import SignedClient
    from workers_mgmt.services import credential_rotate

    setup_test_environment()  # the in-process client's host name
    actor = Actor.command("move-fill")
    get_user_model().objects.create_superuser("ops", "ops@example.com", "move-fill-pw")
    _, issued = make_worker(worker_id="mover", rate_limit_per_min=100_000)
    signed = SignedClient(Client(), worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)
    jobs = jobs_enqueue(provider=make_provider("maps"), payloads=[{"n": n} for n in range(6)])
    assert signed.post("/api/v1/heartbeat", {"version": "0.9.0", "status": "idle", "running_jobs": 0}).status_code == 200
    claimed = signed.pull(5).json()["jobs"]
    for index, job in enumerate(claimed):
        leads = [{"name": f"Shop {index}-{k}", "phone": f"05{(index * 3 + k) % 5 + 1}1234567"} for k in range(4)]
        leads.append({"name": "No phone", "phone": "12"})
        outcome = "failed" if index == 0 else "succeeded"
        body = {"attempt_id": job["attempt_id"], "outcome": outcome, "leads": [] if index == 0 else leads}
        if index == 0:
            body["error"] = {"code": "blocked", "message": "captcha", "retryable": True}
        answer = signed.report(job["id"], body, key=f"move-fill-{index}")
        assert answer.status_code == 200, answer.content
    assert len(jobs) == 6
    other, _ = make_worker(worker_id="rotated")
    credential_rotate(worker=other, actor="move-fill", grace_hours=1)
    suppression_add(phone="0509999999", reason="opt-out", actor=actor)
    privacy_erase(phone="0511234567", reason="request", actor=actor)

    release_publish(version="1.0.0", fileobj=io.BytesIO(tar_artifact("1.0.0")), filename="w.tar.gz",
                    actor="move-fill")
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="move-fill")

    receiver_set(name="hook", kind="webhook", url="http://127.0.0.1:9/hook")
    silent_workers(2, silent_for_s=3600, prefix="silent")
    silence_create(matchers=[{"name": "worker", "op": "=", "value": "silent-001"}],
                   ends_at=timezone.now() + dt.timedelta(hours=1), created_by="ops", comment="maintenance")
    for _ in range(3):
        evaluator_tick(now=timezone.now() + dt.timedelta(minutes=_ * 20))
    print(json.dumps({"worker_id": issued.worker_id, "key_id": issued.key_id, "secret": issued.secret}))


if __name__ == "__main__":
    main()
