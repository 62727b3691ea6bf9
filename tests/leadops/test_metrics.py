"""GET /metrics: refused without staff or the bearer token; parses; agrees with the database."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import lead, make_jobs, make_provider

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def token(settings):
    settings.LEADOPS_METRICS_TOKEN = TOKEN
    return TOKEN


def test_anonymous_is_refused(client, token):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_non_staff_session_is_refused(client, token, django_user_model):
    client.force_login(django_user_model.objects.create_user("u", password="x-123456789"))
    response = client.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Bearer {TOKEN[:-1]}"])
def test_wrong_token_is_refused(client, token, header):
    assert client.get("/metrics", headers={"Authorization": header}).status_code == 401


def test_no_token_configured_refuses_every_bearer(client, settings):
    settings.LEADOPS_METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def _scrape(response) -> dict[str, dict[tuple, float]]:
    assert response.status_code == 200, response.content
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_numbers_agree_with_the_database(client, token, signed, make_signed):
    from ingestion.models import IngestCounter
    from queueing.models import Job, JobAttempt

    make_jobs(3)
    make_jobs(2, provider=make_provider("other"))
    claims = signed.pull(3).json()["jobs"]
    rows = [lead("A", "0501111111"), lead("B", "0501111111"), lead("C", "12")]
    assert signed.report(claims[0]["id"], {"attempt_id": claims[0]["attempt_id"], "outcome": "succeeded",
                                           "leads": rows}).status_code == 200
    assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200
    make_signed("w-silent")  # never heard from: not online

    samples = _scrape(client.get("/metrics", headers={"Authorization": f"Bearer {token}"}))

    depth = {(dict(k)["provider"], dict(k)["state"]): v for k, v in samples["leadops_queue_jobs"].items()}
    for provider in ("maps", "other"):
        for state in ("queued", "leased", "succeeded"):
            expected = Job.objects.filter(provider__name=provider, state=state).count()
            assert depth.get((provider, state), 0) == expected
    assert sum(depth.values()) == Job.objects.count() == 5
    assert samples["leadops_claims_total"][()] == JobAttempt.objects.count() == 3
    assert samples["leadops_reports_total"][()] == 1
    leads = {dict(k)["outcome"]: v for k, v in samples["leadops_leads_total"].items()}
    counters = IngestCounter.objects.get()
    assert leads == {"added": counters.added, "duplicates": counters.duplicates, "invalid": counters.invalid,
                     "suppressed": counters.suppressed}
    assert leads == {"added": 1, "duplicates": 1, "invalid": 1, "suppressed": 0}
    assert samples["leadops_dup_ratio"][()] == pytest.approx(0.5)
    assert samples["leadops_workers_online"][()] == 1
    assert "leadops_http_request_duration_seconds_bucket" in samples


def test_staff_session_may_scrape_and_breaker_states_are_exposed(client, admin_user):
    from queueing.services import BreakerAction, breaker_force

    make_provider("maps")
    breaker_force(scope="provider", key="maps", action=BreakerAction.FORCE_OPEN)
    client.force_login(admin_user)
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = _scrape(response)
    assert samples["leadops_breaker_state"][(("key", "maps"), ("scope", "provider"))] == 2
    assert "leadops_workers_online" in samples


def test_latency_histogram_is_labelled_by_route_pattern_not_path(client, token, signed):
    signed.post("/api/v1/jobs/987654/report", {"attempt_id": "00000000-0000-0000-0000-000000000000",
                                               "outcome": "succeeded", "leads": []})
    text = client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).content.decode()
    routes = {
        sample.labels["route"]
        for family in text_string_to_metric_families(text)
        if family.name == "leadops_http_request_duration_seconds"
        for sample in family.samples if "route" in sample.labels
    }
    assert "api/v1/jobs/<int:job_id>/report" in routes
    assert not any("987654" in route for route in routes)


def test_counters_never_go_down_when_the_pruner_deletes_finished_jobs(client, token, signed):
    import datetime as dt

    from django.utils import timezone

    from queueing.models import Job
    from queueing.services import finished_jobs_prune

    make_jobs(2)
    for claim in signed.pull(2).json()["jobs"]:
        assert signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                           "leads": [lead("A", "0501111111")]}).status_code == 200
    before = _scrape(client.get("/metrics", headers={"Authorization": f"Bearer {token}"}))
    assert finished_jobs_prune(older_than=timezone.now() + dt.timedelta(days=1)) == 2
    assert not Job.objects.exists()
    after = _scrape(client.get("/metrics", headers={"Authorization": f"Bearer {token}"}))
    for name in ("leadops_claims_total", "leadops_reports_total"):
        assert after[name][()] == before[name][()] == 2
    assert after["leadops_leads_total"] == before["leadops_leads_total"]


def test_a_scrape_reads_the_totals_without_aggregating_the_attempts_table(client, token, signed,
                                                                           django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from queueing.models import JobAttempt

    make_jobs(1)
    signed.pull(1)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    attempts_table = JobAttempt._meta.db_table
    assert not [q["sql"] for q in queries.captured_queries if attempts_table in q["sql"]]
