"""Protocol v1.1 exchange: each item answered exactly as its own v1 report, limits for the whole.

Runs on SQLite and (with DATABASE_URL) on PostgreSQL; the concurrency test is PostgreSQL only.
"""

from __future__ import annotations

import uuid

import pytest

from ingestion.models import Lead
from queueing.models import Job, JobAttempt, JobState, ReportReceipt
from tests.factories import lead, make_jobs

pytestmark = pytest.mark.django_db

EXCHANGE = "/api/v1/jobs/exchange"


def _claims(signed, count):
    make_jobs(count)
    jobs = signed.pull(count).json()["jobs"]
    assert len(jobs) == count
    return jobs


def _item(claim, *, outcome="succeeded", leads=(), key=None, **extra):
    return {"job_id": claim["id"], "idempotency_key": key or str(uuid.uuid4()),
            "attempt_id": claim["attempt_id"], "outcome": outcome, "leads": list(leads), **extra}


def test_exchange_answers_each_item_like_its_own_report_and_pulls_after(signed):
    first, second = _claims(signed, 2)
    make_jobs(3)
    response = signed.post(EXCHANGE, {
        "reports": [
            _item(first, leads=[lead("A", "0501111111"), lead("B", "0501111111"), lead("C", "12")]),
            _item(second, outcome="failed", error={"code": "blocked", "message": "x", "retryable": True}),
        ],
        "pull": {"max": 2},
    })
    assert response.status_code == 200, response.content
    body = response.json()
    results = body["results"]
    assert [r["job_id"] for r in results] == [first["id"], second["id"]]
    assert (results[0]["job_id"], results[0]["status"]) == (first["id"], 200)
    assert {k: results[0]["body"][k] for k in ("job_state", "added", "duplicates", "invalid")} == {
        "job_state": "succeeded", "added": 1, "duplicates": 1, "invalid": 1}
    assert results[1]["status"] == 200 and results[1]["body"]["job_state"] == "queued"
    assert len(body["jobs"]) == 2 and body["retry_after_s"] == 0
    assert Job.objects.get(pk=first["id"]).state == JobState.SUCCEEDED
    assert Lead.objects.filter(job_id=first["id"]).count() == 2


def test_item_body_is_the_v1_report_answer_for_the_same_key(signed):
    (claim,) = _claims(signed, 1)
    item = _item(claim, leads=[lead("A", "0502222222")])
    exchanged = signed.post(EXCHANGE, {"reports": [item]}).json()["results"][0]
    # The same key and body through v1 is a replay of the exchange item: the first answer again.
    v1_body = {k: v for k, v in item.items() if k not in ("job_id", "idempotency_key")}
    replay = signed.report(claim["id"], v1_body, key=item["idempotency_key"])
    assert replay.status_code == exchanged["status"] == 200
    assert replay.json() == exchanged["body"]


def test_item_body_has_exactly_the_shape_of_a_fresh_v1_answer(signed):
    v1_claim, exchange_claim = _claims(signed, 2)
    for outcome in ("partial", "succeeded"):
        v1 = signed.report(v1_claim["id"], {"attempt_id": v1_claim["attempt_id"], "outcome": outcome,
                                            "leads": [lead("A", f"050100000{outcome == 'partial':d}")]}).json()
        item = signed.post(EXCHANGE, {"reports": [_item(exchange_claim, outcome=outcome, leads=[
            lead("B", f"050200000{outcome == 'partial':d}")])]}).json()["results"][0]["body"]
        # Every count the v1 answer carries (a later one too) is in the exchange item, same values.
        assert set(item) == set(v1)
        assert {k: v for k, v in item.items() if k != "lease_expires_at"} == {
            k: v for k, v in v1.items() if k != "lease_expires_at"}


def test_mixed_good_and_bad_items_fail_alone(signed):
    good, superseded, other = _claims(signed, 3)
    response = signed.post(EXCHANGE, {"reports": [
        _item(good, leads=[lead("A", "0503333333")]),
        _item(superseded, attempt_id=str(uuid.uuid4())),
        {"job_id": 999_999, "idempotency_key": "k-missing", "attempt_id": str(uuid.uuid4()),
         "outcome": "succeeded", "leads": []},
        _item(other, outcome="exploded"),
        {**_item(other), "idempotency_key": ""},
        _item(other, leads=[{"name": "no phone"}]),
        "not an object",
        {"job_id": "seven", "idempotency_key": "k", "attempt_id": str(uuid.uuid4()), "outcome": "succeeded"},
    ]})
    assert response.status_code == 200, response.content
    statuses = [(r["status"], r["body"].get("error", {}).get("code")) for r in response.json()["results"]]
    assert statuses == [
        (200, None), (404, "attempt_not_found"), (404, "job_not_found"), (422, "validation_error"),
        (400, "idempotency_key_required"), (422, "validation_error"), (422, "validation_error"),
        (404, "job_not_found"),
    ]
    assert Job.objects.get(pk=good["id"]).state == JobState.SUCCEEDED
    assert Job.objects.get(pk=other["id"]).state == JobState.LEASED
    assert ReportReceipt.objects.count() == 1


def test_superseded_attempt_gets_409_for_that_item_only(signed, make_signed):
    first, second = _claims(signed, 2)
    # The first job's lease is given back and taken by another worker: a newer attempt exists.
    assert signed.post("/api/v1/jobs/release", {"attempt_ids": [first["attempt_id"]]}).json()["released"] == 1
    other = make_signed("w-other")
    assert other.pull(1).json()["jobs"][0]["id"] == first["id"]
    response = signed.post(EXCHANGE, {"reports": [_item(first, leads=[lead("A", "0504444444")]),
                                                  _item(second)]})
    results = response.json()["results"]
    assert results[0]["status"] == 409
    assert results[0]["body"]["error"]["code"] == "attempt_superseded"
    assert results[1]["status"] == 200
    assert Lead.objects.filter(job_id=first["id"]).count() == 0
    assert Job.objects.get(pk=first["id"]).state == JobState.LEASED


def test_replay_returns_the_first_answer_and_changes_nothing(signed):
    (claim,) = _claims(signed, 1)
    item = _item(claim, leads=[lead("A", "0505555555"), lead("B", "0505555556")])
    first = signed.post(EXCHANGE, {"reports": [item]}).json()["results"]
    again = signed.post(EXCHANGE, {"reports": [item, item]}).json()["results"]
    assert again == first * 2
    assert Lead.objects.count() == 2
    assert JobAttempt.objects.get(pk=claim["attempt_id"]).reports == 1


def test_reused_key_with_another_body_is_422_for_that_item_only(signed):
    first, second = _claims(signed, 2)
    item = _item(first, leads=[lead("A", "0506666666")])
    signed.post(EXCHANGE, {"reports": [item]})
    changed = {**item, "leads": [lead("Z", "0506666667")]}
    results = signed.post(EXCHANGE, {"reports": [changed, _item(second)]}).json()["results"]
    assert results[0]["status"] == 422
    assert results[0]["body"]["error"]["code"] == "idempotency_key_reused"
    assert results[1]["status"] == 200
    assert Lead.objects.filter(phone_raw="0506666667").count() == 0


def test_too_many_reports_is_422_for_the_whole_request(signed, settings):
    settings.LEADOPS_MAX_EXCHANGE_REPORTS = 2
    claims = _claims(signed, 3)
    make_jobs(1)
    response = signed.post(EXCHANGE, {"reports": [_item(c) for c in claims], "pull": {"max": 1}})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert not Job.objects.filter(state=JobState.SUCCEEDED).exists()
    assert Job.objects.filter(state=JobState.QUEUED).count() == 1  # the pull did not run either


def test_too_many_leads_in_all_is_422_for_the_whole_request(signed, settings):
    settings.LEADOPS_MAX_LEADS_PER_EXCHANGE = 3
    first, second = _claims(signed, 2)
    response = signed.post(EXCHANGE, {"reports": [
        _item(first, leads=[lead("A", "0507777771"), lead("B", "0507777772")]),
        _item(second, leads=[lead("C", "0507777773"), lead("D", "0507777774")]),
    ]})
    assert response.status_code == 422
    assert Lead.objects.count() == 0 and ReportReceipt.objects.count() == 0


def test_pull_only_and_empty_exchange(signed):
    make_jobs(2)
    body = signed.post(EXCHANGE, {"pull": {"max": 5}}).json()
    assert body["results"] == [] and len(body["jobs"]) == 2
    empty = signed.post(EXCHANGE, {"pull": {"max": 0}}).json()
    assert empty["jobs"] == [] and empty["results"] == []
    idle = signed.post(EXCHANGE, {"pull": {"max": 1}}).json()
    assert idle["jobs"] == [] and idle["retry_after_s"] > 0


@pytest.mark.parametrize("payload", [[], {"reports": {}}, {"pull": {"max": 51}}, {"pull": "x"}])
def test_malformed_exchange_is_refused_whole(signed, payload):
    response = signed.post(EXCHANGE, payload)
    assert response.status_code == 422
    assert "error" in response.json()


def test_exchange_needs_a_signature(client):
    assert client.post(EXCHANGE, {}, content_type="application/json").status_code == 401


def test_same_job_twice_runs_in_order_partial_then_outcome(signed):
    (claim,) = _claims(signed, 1)
    results = signed.post(EXCHANGE, {"reports": [
        _item(claim, outcome="partial", leads=[lead("A", "0508888881")]),
        _item(claim, outcome="succeeded", leads=[lead("B", "0508888882")]),
    ]}).json()["results"]
    assert [r["body"]["job_state"] for r in results] == ["leased", "succeeded"]
    attempt = JobAttempt.objects.get(pk=claim["attempt_id"])
    assert (attempt.reports, attempt.leads_added) == (2, 2)
    assert Job.objects.get(pk=claim["id"]).leads_added == 2


def test_one_key_for_two_jobs_in_one_exchange_is_reused_for_the_second(signed):
    first, second = _claims(signed, 2)
    results = signed.post(EXCHANGE, {"reports": [_item(first, key="same"), _item(second, key="same")]}).json()
    assert [r["status"] for r in results["results"]] == [200, 422]
    assert results["results"][1]["body"]["error"]["code"] == "idempotency_key_reused"
    assert Job.objects.get(pk=second["id"]).state == JobState.LEASED


def test_non_retryable_failure_and_partial_match_v1(signed):
    dead, partial = _claims(signed, 2)
    results = signed.post(EXCHANGE, {"reports": [
        _item(dead, outcome="failed", error={"code": "gone", "message": "", "retryable": False}),
        _item(partial, outcome="partial", leads=[lead("P", "0509999991")]),
    ]}).json()["results"]
    assert (results[0]["body"]["job_state"], results[0]["body"]["added"]) == ("dead", 0)
    assert results[1]["body"]["job_state"] == "leased" and "lease_expires_at" in results[1]["body"]
    job = Job.objects.get(pk=dead["id"])
    assert (job.state, job.dead_reason, job.last_error["code"]) == ("dead", "non_retryable_error", "gone")
    assert JobAttempt.objects.get(pk=dead["attempt_id"]).state == "failed"
    assert Job.objects.get(pk=partial["id"]).lease_expires_at.isoformat() == results[1]["body"]["lease_expires_at"]


def test_two_items_with_the_same_phone_add_it_once_for_the_first_item(signed):
    first, second, third = _claims(signed, 3)
    results = signed.post(EXCHANGE, {"reports": [
        _item(first, leads=[lead("A", "0503333331"), lead("B", "0503333332")]),
        _item(second, leads=[lead("A again", "+966 50 333 3331"), lead("C", "0503333333")]),
        _item(third, leads=[lead("C again", "0503333333"), lead("C thrice", "0503333333")]),
    ]}).json()["results"]
    counts = [(r["body"]["added"], r["body"]["duplicates"]) for r in results]
    # Item order decides, as if the three had been reported one after the other.
    assert counts == [(2, 0), (1, 1), (0, 2)]
    stored = dict(Lead.objects.filter(phone_e164__isnull=False).values_list("phone_e164", "job_id"))
    assert stored == {"+966503333331": first["id"], "+966503333332": first["id"],
                      "+966503333333": second["id"]}
    attempts = {a.pk: (a.leads_added, a.leads_duplicates) for a in JobAttempt.objects.all()}
    assert [attempts[uuid.UUID(c["attempt_id"])] for c in (first, second, third)] == [(2, 0), (1, 1), (0, 2)]


def test_a_bad_item_among_items_with_leads_leaves_the_others_ingested(signed):
    first, second, third = _claims(signed, 3)
    results = signed.post(EXCHANGE, {"reports": [
        _item(first, leads=[lead("A", "0504444441")]),
        _item(second, leads=[{"name": "no phone field"}]),
        _item(third, attempt_id=str(uuid.uuid4()), leads=[lead("B", "0504444442")]),
    ]}).json()["results"]
    assert [r["status"] for r in results] == [200, 422, 404]
    assert results[0]["body"]["added"] == 1
    assert list(Lead.objects.values_list("phone_e164", flat=True)) == ["+966504444441"]
    assert Job.objects.filter(pk__in=[second["id"], third["id"]], state=JobState.LEASED).count() == 2
