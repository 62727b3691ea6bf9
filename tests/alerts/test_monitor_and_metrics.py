"""The monitor page's live badge of firing alerts, its snapshot, /metrics, and the evaluator's query budget."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alerts.services import evaluator_tick, receiver_set
from leadops.schedules import PERIODIC_TASKS
from tests.alerts.factories import heartbeat, silent_workers


def test_monitor_page_shows_the_number_firing(admin_client, clock, db):
    silent_workers(3, silent_for_s=61)
    evaluator_tick()
    page = admin_client.get(reverse("leadops-monitor")).content.decode()
    assert 'data-metric="alerts.firing">3</span>' in page
    snapshot = admin_client.get(reverse("leadops-monitor-snapshot")).json()
    assert snapshot["metrics"]["alerts.firing"] == 3


def test_metrics_expose_alerts_firing_by_rule(admin_client, clock, db):
    workers = silent_workers(2, silent_for_s=61)
    evaluator_tick()
    text = admin_client.get("/metrics").content.decode()
    assert 'leadops_alerts_firing{rule="heartbeat_missing"} 2.0' in text
    assert 'leadops_alerts_firing{rule="dlq_growth"} 0.0' in text
    clock.shift(10)
    heartbeat(workers)
    evaluator_tick()
    assert 'leadops_alerts_firing{rule="heartbeat_missing"} 0.0' in admin_client.get("/metrics").content.decode()


def test_the_q_cluster_also_runs_the_evaluator():
    assert ("alerts: evaluate rules and deliver", "alerts.tasks.evaluate_alerts", 1) in PERIODIC_TASKS


def _steady_queries(clock, workers: int, prefix: str) -> int:
    silent_workers(workers, silent_for_s=61, prefix=prefix)
    evaluator_tick()
    clock.shift(16)
    evaluator_tick()
    clock.shift(10)
    with CaptureQueriesContext(connection) as queries:
        evaluator_tick()
    return len(queries)


def test_a_steady_evaluator_round_costs_the_same_for_5_or_50_silent_workers(clock, db, http_receiver):
    receiver_set(name="hook", kind="webhook", url=http_receiver.url("/hook"))
    few = _steady_queries(clock, 5, "few")
    clock.shift(500)
    many = _steady_queries(clock, 45, "many")
    assert many == few, (few, many)
    # Eleven rules, each a locked read, its selector and one UPDATE; the failing-jobs rules also read
    # their evidence (docs/RUNBOOK.md, "Evidence in the message").
    assert few <= 80
