"""The monitor says why work stopped, shows the last hour's motion and the fleet, and counts the
jobs that succeeded in the last minute on its first render (docs/RUNBOOK.md, "The monitor")."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest

from queueing import services
from queueing.models import Provider
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db


def report(worker, claim, outcome: str, **extra) -> None:
    body = {"outcome": outcome, **extra}
    services.job_report(worker=worker, job_id=claim.job_id, attempt_id=claim.attempt_id, outcome=outcome,
                        leads=[], error=extra.get("error"), idempotency_key=str(uuid.uuid4()),
                        request_hash=services.report_request_hash(job_id=claim.job_id, body=body))


def blockers(client) -> dict[str, str]:
    """Reason -> text of every line of "Why work is stopped" (lines of one reason joined by " | ")."""
    html = client.get("/admin/monitor/").content.decode()
    block = html[html.index('id="lo-blockers"'):html.index("</div>", html.index('id="lo-blockers"'))]
    lines: dict[str, str] = {}
    for reason, text in re.findall(r'<li data-reason="([a-z_]+)"[^>]*>([^<]+)</li>', block):
        lines[reason] = f"{lines[reason]} | {text}" if reason in lines else text
    return lines


def test_queued_work_and_no_worker_online_is_a_reason_and_a_heartbeat_lifts_it(admin_client, clock):
    from django.utils import timezone

    from workers_mgmt.models import Worker

    make_jobs(1, provider=make_provider("maps"))
    make_worker(worker_id="w-ok")
    assert blockers(admin_client) == {"no_worker_online": "No worker is online: 1 queued jobs wait for one."}
    Worker.objects.filter(pk="w-ok").update(last_heartbeat_at=timezone.now())
    html = admin_client.get("/admin/monitor/").content.decode()
    assert "Why work is stopped" not in html and "Nothing holds work back" in html


def test_a_disabled_provider_an_open_breaker_and_a_spent_quota_are_named(admin_client, admin_user, clock):
    worker = make_worker(worker_id="w-why")[0]
    make_jobs(2, provider=make_provider("off", enabled=False))
    make_jobs(3, provider=make_provider("capped", daily_cap=1))
    flaky = make_provider("flaky", breaker_min_outcomes=2, breaker_failure_pct=50, max_attempts=5)
    make_jobs(4, provider=flaky)
    claims = services.jobs_pull(worker=worker, max_jobs=10).claims
    assert sorted(claim.provider for claim in claims).count("capped") == 1  # the cap held the other two
    for claim in [c for c in claims if c.provider == "flaky"][:2]:
        report(worker, claim, "failed", error={"code": "blocked", "retryable": True})
    services.breaker_force(scope="worker", key="w-why", action="force_open", actor=admin_user)

    lines = blockers(admin_client)
    assert lines["provider_disabled"] == ("Provider off is disabled: none of its 2 queued jobs is handed out "
                                          "until it is enabled again.")
    assert lines["quota_spent"] == ("Provider capped spent its daily quota (1 of 1 jobs today): its work waits "
                                    "for local midnight.")
    assert "The circuit breaker of provider flaky is open after too many failures" in lines["breaker_open"]
    assert "The circuit breaker of worker w-why is held open by staff." in lines["breaker_open"]

    Provider.objects.filter(name="off").update(enabled=True)
    assert "provider_disabled" not in blockers(admin_client)


def test_succeeded_last_minute_is_right_on_first_render(admin_client, clock):
    # It used to be 0 on every first render: the page only counted the events it saw after loading.
    worker = make_worker(worker_id="w-fast")[0]
    make_jobs(5, provider=make_provider("maps"))
    claims = services.jobs_pull(worker=worker, max_jobs=5).claims
    clock.shift(-120)
    report(worker, claims[0], "succeeded")  # two minutes ago: not in the last minute
    clock.shift(120 - 30)
    report(worker, claims[1], "succeeded")
    report(worker, claims[2], "succeeded")
    clock.shift(30)

    response = admin_client.get("/admin/monitor/")
    html = response.content.decode()
    assert re.search(r'data-metric="succeeded_last_minute">2<', html)
    # The page's clock starts from the same two finishing times, so the live count goes on from there.
    recent = json.loads(html.split('id="lo-recent-succeeded" type="application/json">')[1].split("</script>")[0])
    assert len(recent) == 2
    assert admin_client.get("/admin/monitor/snapshot/").json()["metrics"]["succeeded_last_minute"] == 2


def test_last_hour_chart_counts_outcomes_per_minute_and_the_claim_wait(admin_client, clock):
    worker = make_worker(worker_id="w-chart")[0]
    make_jobs(3, provider=make_provider("maps", max_attempts=1))
    clock.shift(20)  # the jobs waited 20 s for a claim
    claims = services.jobs_pull(worker=worker, max_jobs=3).claims
    report(worker, claims[0], "succeeded")
    report(worker, claims[1], "failed", error={"code": "blocked", "retryable": False})

    series = admin_client.get("/admin/monitor/snapshot/").json()["throughput"]
    assert len(series) == 60
    last = series[-1]
    assert (last["succeeded"], last["dead"], last["failed"]) == (1, 1, 1)
    assert last["claim_p95_s"] == 20.0
    assert sum(minute["succeeded"] for minute in series[:-1]) == 0
    html = admin_client.get("/admin/monitor/").content.decode()
    assert 'id="lo-throughput-data"' in html and "monitor-chart.js" in html


def test_fleet_grid_shows_each_worker_by_state(admin_client, clock):
    from django.utils import timezone

    from workers_mgmt.models import Worker

    for worker_id in ("busy-1", "idle-1", "late-1", "new-1", "off-1"):
        make_worker(worker_id=worker_id)
    now = timezone.now()
    Worker.objects.filter(pk="busy-1").update(last_heartbeat_at=now, running_jobs=2)
    Worker.objects.filter(pk="idle-1").update(last_heartbeat_at=now)
    Worker.objects.filter(pk="late-1").update(last_heartbeat_at=now - dt.timedelta(hours=1))
    Worker.objects.filter(pk="off-1").update(enabled=False, last_heartbeat_at=now)

    html = admin_client.get("/admin/monitor/").content.decode()
    states = dict(re.findall(r'data-fleet-worker="([^"]+)" data-state="([a-z]+)"', html))
    assert states == {"busy-1": "busy", "idle-1": "idle", "late-1": "overdue", "new-1": "never",
                      "off-1": "disabled"}
    assert 'data-fleet-count="busy">1<' in html and 'data-fleet-count="breaker">0<' in html
