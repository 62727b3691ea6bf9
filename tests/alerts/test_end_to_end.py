"""A worker stops heartbeating -> Slack, email and a signed webhook arrive over the real protocols.

The evaluator runs as it does in production (`evaluator_run`, here in a thread) with timings shortened
through settings; the latency from the moment the heartbeat became overdue to each receipt is printed.
"""

import datetime as dt
import hashlib
import hmac
import threading
import time

import pytest
from django.utils import timezone

from alerts.evaluator import evaluator_run
from alerts.services import receiver_set, rule_set
from tests.factories import make_worker
from workers_mgmt.models import Worker

OVERDUE_AFTER_S = 3


@pytest.mark.slow
def test_silent_worker_reaches_slack_email_and_webhook_within_a_minute(
        transactional_db, http_receiver, smtp_receiver, fast_timers, capsys):
    rule_set(kind="heartbeat_missing", threshold=OVERDUE_AFTER_S, for_seconds=0)
    receiver_set(name="slack", kind="slack", url=http_receiver.url("/slack"))
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"), secret="hook-key")
    receiver_set(name="mail", kind="email", addresses="oncall@example.com")
    worker, _ = make_worker(worker_id="w-e2e")
    last_heartbeat = timezone.now()
    Worker.objects.filter(pk=worker.pk).update(last_heartbeat_at=last_heartbeat, last_seen_at=last_heartbeat)
    overdue_at = (last_heartbeat + dt.timedelta(seconds=OVERDUE_AFTER_S)).timestamp()

    stop = threading.Event()
    evaluator = threading.Thread(target=evaluator_run, kwargs={"stop": stop}, daemon=True)
    evaluator.start()
    try:
        [slack] = http_receiver.wait_for("/slack", timeout=60)
        [hook] = http_receiver.wait_for("/hook", timeout=60)
        [mail] = smtp_receiver.wait_for(1, timeout=60)
    finally:
        stop.set()
        evaluator.join(timeout=15)

    latencies = {"slack": slack.at - overdue_at, "webhook": hook.at - overdue_at, "email": mail.at - overdue_at}
    with capsys.disabled():
        print("\nheartbeat overdue -> receipt: " + ", ".join(f"{k} {v:.2f} s" for k, v in latencies.items()))
    assert all(0 < latency < 60 for latency in latencies.values()), latencies
    assert slack.json()["text"] == "[FIRING:1] heartbeat_missing"
    assert hook.headers["X-LeadOps-Signature"] == "sha256=" + hmac.new(b"hook-key", hook.body, hashlib.sha256).hexdigest()
    assert hook.json()["alerts"][0]["labels"]["worker"] == "w-e2e"
    assert "[FIRING:1] heartbeat_missing" in mail.message["Subject"]
    assert mail.recipients == ["oncall@example.com"]
    time.sleep(0)  # the evaluator thread is stopped; nothing else arrives late
    assert len(http_receiver.at("/slack")) == 1
