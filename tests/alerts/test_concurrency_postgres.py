"""Two evaluator processes on PostgreSQL: every notification is created once and sent once."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from alerts.models import DeliveryAttempt, Notification, Route
from alerts.services import receiver_set
from tests.alerts.factories import silent_workers

BASE_DIR = Path(__file__).resolve().parents[2]
WORKERS = 20


def _evaluator(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "alerts_evaluate"], cwd=BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.postgres
@pytest.mark.real_clock  # the evaluators are processes of their own, on the real clock
@pytest.mark.slow
def test_two_evaluator_processes_send_each_notification_once(transactional_db, http_receiver):
    per_worker = receiver_set(name="per-worker", kind="webhook", url=http_receiver.url("/per-worker"))
    grouped = receiver_set(name="grouped", kind="webhook", url=http_receiver.url("/grouped"))
    Route.objects.create(name="per worker", receiver=per_worker, group_by=["alertname", "worker"],
                         continue_matching=True, position=1)
    Route.objects.create(name="grouped", receiver=grouped, position=2)
    workers = silent_workers(WORKERS, silent_for_s=120)

    db = connection.settings_dict
    env = {**os.environ, "LEADOPS_DB_POOL": "false",
           "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
           "LEADOPS_ALERT_GROUP_WAIT_S": "1", "LEADOPS_ALERT_GROUP_INTERVAL_S": "1",
           "LEADOPS_ALERT_EVAL_INTERVAL_S": "0.2"}
    processes = [_evaluator(env), _evaluator(env)]
    try:
        http_receiver.wait_for("/per-worker", WORKERS, timeout=60)
        http_receiver.wait_for("/grouped", 1, timeout=30)
        time.sleep(4)  # several more rounds of both evaluators, each group flushed again and again
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30)[0].decode() for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs

    per_worker_posts = http_receiver.at("/per-worker")
    counted = Counter(post.json()["alerts"][0]["labels"]["worker"] for post in per_worker_posts)
    assert counted == dict.fromkeys(workers, 1), counted
    [grouped_post] = http_receiver.at("/grouped")
    assert len(grouped_post.json()["alerts"]) == WORKERS
    assert Notification.objects.count() == WORKERS + 1
    assert DeliveryAttempt.objects.count() == WORKERS + 1
