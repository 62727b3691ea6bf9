"""A table of bad inputs against every worker endpoint: 400/413/422 in the error shape, never 500."""

from __future__ import annotations

import json

import pytest

from tests.factories import make_jobs

pytestmark = pytest.mark.django_db

BAD_BODIES = [
    ("malformed json", b"{not json", 400),
    ("truncated json", b'{"max": 1', 400),
    ("json array", b"[1, 2]", 422),
    ("json string", b'"hello"', 422),
    ("json null", b"null", 422),
    ("nan literal", b'{"max": NaN}', 400),
    ("invalid utf-8", b'{"max": "\xff\xfe"}', 400),
]


def assert_error_shape(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str)


@pytest.fixture
def job_and_attempt(signed):
    job = make_jobs(1)[0]
    claim = signed.pull(1).json()["jobs"][0]
    return job.pk, claim["attempt_id"]


def endpoints(job_id):
    return ["/api/v1/heartbeat", "/api/v1/jobs/pull", "/api/v1/jobs/release",
            f"/api/v1/jobs/{job_id}/extend", f"/api/v1/jobs/{job_id}/report"]


@pytest.mark.parametrize(("label", "raw", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_on_every_endpoint(signed, job_and_attempt, label, raw, status):
    job_id, _ = job_and_attempt
    for path in endpoints(job_id):
        response = signed.post(path, raw=raw, headers={"Idempotency-Key": "bad-1"})
        assert_error_shape(response, status)


WRONG_FIELDS = [
    ("/api/v1/heartbeat", {"version": 1, "status": "ok", "running_jobs": 0}, "version"),
    ("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": "3"}, "running_jobs"),
    ("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": -1}, "running_jobs"),
    ("/api/v1/heartbeat", {"status": "ok", "running_jobs": 0}, "version"),
    ("/api/v1/heartbeat", {"version": "x" * 10_000, "status": "ok", "running_jobs": 0}, "version"),
    ("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 10**30}, "running_jobs"),
    ("/api/v1/jobs/pull", {"max": 0}, "max"),
    ("/api/v1/jobs/pull", {"max": -5}, "max"),
    ("/api/v1/jobs/pull", {"max": 51}, "max"),
    ("/api/v1/jobs/pull", {"max": 10**40}, "max"),
    ("/api/v1/jobs/pull", {"max": 1.5}, "max"),
    ("/api/v1/jobs/pull", {"max": "3"}, "max"),
    ("/api/v1/jobs/pull", {"max": True}, "max"),
    ("/api/v1/jobs/pull", {"providers": "maps"}, "providers"),
    ("/api/v1/jobs/pull", {"providers": [1, 2]}, "providers"),
    ("/api/v1/jobs/release", {"attempt_ids": ["not-a-uuid"]}, "attempt_ids"),
    ("/api/v1/jobs/release", {"attempt_ids": "x"}, "attempt_ids"),
]


@pytest.mark.parametrize(("path", "payload", "field"), WRONG_FIELDS)
def test_wrong_types_and_ranges_are_422_with_fields(signed, path, payload, field):
    response = signed.post(path, payload)
    assert_error_shape(response, 422)
    assert field in response.json()["error"]["fields"]


REPORT_CASES = [
    ({"outcome": "succeeded", "leads": []}, "attempt_id"),
    ({"attempt_id": "zzz", "outcome": "succeeded", "leads": []}, "attempt_id"),
    ({"attempt_id": "{attempt}", "outcome": "done", "leads": []}, "outcome"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": "many"}, "leads"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": [{"phone": "0501234567"}]}, "leads[0].name"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": [{"name": 5, "phone": "0501234567"}]}, "leads[0].name"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": [{"name": "x", "phone": 501234567}]}, "leads[0].phone"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": ["a lead"]}, "leads[0]"),
    ({"attempt_id": "{attempt}", "outcome": "succeeded", "leads": [{"name": "a\x00b", "phone": "1"}]}, "leads[0].name"),
    ({"attempt_id": "{attempt}", "outcome": "failed", "error": {"code": 5, "message": "m"}, "leads": []}, "error"),
    ({"attempt_id": "{attempt}", "outcome": "failed", "error": "boom", "leads": []}, "error"),
]


@pytest.mark.parametrize(("payload", "field"), REPORT_CASES)
def test_bad_reports_are_422_and_change_nothing(signed, job_and_attempt, payload, field):
    from queueing.models import Job, JobState

    job_id, attempt_id = job_and_attempt
    body = json.loads(json.dumps(payload).replace("{attempt}", attempt_id))
    response = signed.report(job_id, body)
    assert_error_shape(response, 422)
    fields = response.json()["error"]["fields"]
    assert any(key.startswith(field) for key in fields), fields
    assert Job.objects.get(pk=job_id).state == JobState.LEASED


def test_lone_surrogates_in_read_strings_are_422(signed, job_and_attempt):
    job_id, attempt_id = job_and_attempt
    heartbeat = signed.post("/api/v1/heartbeat", raw=b'{"version": "\\ud800", "status": "x", "running_jobs": 0}')
    assert_error_shape(heartbeat, 422)
    raw = ('{"attempt_id": "%s", "outcome": "partial", "leads": [{"name": "\\udc00", "phone": "0501234567"}]}'
           % attempt_id).encode()
    assert_error_shape(signed.post(f"/api/v1/jobs/{job_id}/report", raw=raw, headers={"Idempotency-Key": "s"}), 422)


def test_too_many_leads_is_422(signed, job_and_attempt, settings):
    settings.LEADOPS_MAX_LEADS_PER_REPORT = 5
    job_id, attempt_id = job_and_attempt
    leads = [{"name": f"n{i}", "phone": "0501234567"} for i in range(6)]
    response = signed.report(job_id, {"attempt_id": attempt_id, "outcome": "succeeded", "leads": leads})
    assert_error_shape(response, 422)


def test_report_without_idempotency_key_is_400(signed, job_and_attempt):
    job_id, attempt_id = job_and_attempt
    response = signed.post(f"/api/v1/jobs/{job_id}/report", {"attempt_id": attempt_id, "outcome": "succeeded"})
    assert_error_shape(response, 400)
    assert response.json()["error"]["code"] == "idempotency_key_required"


def test_huge_body_is_413_before_parsing(signed, settings):
    settings.LEADOPS_MAX_BODY_BYTES = 1000
    response = signed.post("/api/v1/jobs/pull", raw=b'{"max": 1, "pad": "' + b"x" * 2000 + b'"}')
    assert_error_shape(response, 413)
    assert response.json()["error"]["code"] == "payload_too_large"


def test_huge_job_id_is_404_not_500(signed):
    response = signed.report(10**30, {"attempt_id": "00000000-0000-0000-0000-000000000000",
                                      "outcome": "succeeded", "leads": []})
    assert_error_shape(response, 404)


@pytest.mark.parametrize("text", ["مقهى الرياض", "👍🏽 café", "\u200f\u202etext", "ﷺ" * 50, "e\u0301"])
def test_unicode_edge_cases_are_accepted(signed, job_and_attempt, text):
    job_id, attempt_id = job_and_attempt
    response = signed.report(job_id, {"attempt_id": attempt_id, "outcome": "partial",
                                      "leads": [{"name": text, "phone": "0501234567", "city": text}]})
    assert response.status_code == 200, response.content


def test_unknown_api_path_is_404_in_the_error_shape(client, db):
    assert_error_shape(client.get("/api/v1/nothing-here"), 404)


def test_wrong_method_is_405_in_the_error_shape(signed):
    assert_error_shape(signed.get("/api/v1/jobs/pull"), 405)


def test_enqueue_is_staff_only(client, db, django_user_model):
    anonymous = client.post("/api/v1/jobs", {"provider": "maps", "count": 1}, content_type="application/json")
    assert anonymous.status_code in (401, 403)
    user = django_user_model.objects.create_user("op", password="pw-123456789")
    client.force_login(user)
    assert client.post("/api/v1/jobs", {"provider": "maps", "count": 1},
                       content_type="application/json").status_code == 403


def test_staff_enqueue_creates_jobs(admin_client):
    response = admin_client.post("/api/v1/jobs", {"provider": "maps", "count": 3, "payload": {"q": 1}},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 3
    bad = admin_client.post("/api/v1/jobs", {"provider": "Bad Name!", "count": 1}, content_type="application/json")
    assert_error_shape(bad, 422)


@pytest.mark.parametrize("bad", ['"a\\u0000b"', '"\\ud83d"', '{"k\\u0000": 1}'])
def test_unstorable_json_text_in_stored_objects_is_422(signed, bad):
    raw = ('{"version": "1", "status": "ok", "running_jobs": 0, "metrics": {"x": %s}}' % bad).encode()
    assert_error_shape(signed.post("/api/v1/heartbeat", raw=raw), 422)


# Values of every JSON type and a few edges, for the seeded fuzz of lead rows below.
_FUZZ_VALUES = [None, True, False, 0, -1, 7, 90, 91, 2**63, 10**30, 0.5, -180.0, 1e308, "", "x", "0501234567",
                "٠٥٠١٢٣٤٥٦٧", "+966 50 123 4567", "a" * 501, "b" * 2049, "tel:0501234567", [], [1, "a"], {},
                {"k": "v"}, {"k": {"k": [None, 1.5]}}, {"deep": [[[[[[[[[[1]]]]]]]]]]}]
_FUZZ_KEYS = ["name", "phone", "city", "category", "address", "website", "source_url", "external_id", "lat",
              "lng", "rating", "extra", "unknown"]


def test_randomly_broken_lead_rows_get_422_or_are_counted_exactly_never_500(make_signed):
    # Seeded, so a failure repeats. Every row mixes valid and invalid values of every field; a
    # report either fails whole with 422 (nothing stored) or counts each of its leads exactly once.
    import random

    from ingestion.models import IngestCounter
    from queueing.models import Job, JobState

    signed = make_signed("fuzzer", rate_limit_per_min=1_000_000)
    rng = random.Random(20261129)
    make_jobs(40)
    accepted = rejected = 0
    for report in range(40):
        claim = signed.pull(1).json()["jobs"][0]
        leads = []
        for _ in range(rng.randrange(1, 6)):
            row = {"name": "Shop", "phone": f"05{rng.randrange(10**8):08d}"}
            for key in rng.sample(_FUZZ_KEYS, rng.choice((0, 0, 0, 0, 1, 2))):
                row[key] = rng.choice(_FUZZ_VALUES)
            leads.append(row)
        before = sum(c.added + c.duplicates + c.invalid for c in IngestCounter.objects.all())
        response = signed.report(claim["id"], {"attempt_id": claim["attempt_id"], "outcome": "succeeded",
                                               "leads": leads}, key=f"fuzz-{report}")
        after = sum(c.added + c.duplicates + c.invalid for c in IngestCounter.objects.all())
        if response.status_code == 200:
            accepted += 1
            body = response.json()
            assert body["added"] + body["duplicates"] + body["invalid"] == len(leads) == after - before
            assert Job.objects.get(pk=claim["id"]).state == JobState.SUCCEEDED
        else:
            rejected += 1
            assert_error_shape(response, 422)
            assert after == before
            assert Job.objects.get(pk=claim["id"]).state == JobState.LEASED
            signed.post("/api/v1/jobs/release", {"attempt_ids": [claim["attempt_id"]]})
    # The palette makes both outcomes common; a fuzz that only ever hit one would prove little.
    assert accepted >= 5 and rejected >= 5, (accepted, rejected)
