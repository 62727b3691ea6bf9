"""schemathesis against the served OpenAPI document: signed like a worker, and unsigned.

Signed: every case carries a fresh signature of a real worker, from the exact bytes sent (staff-only
operations run with a staff session too); no answer is a 5xx, and every answer (status, content
type, body) matches the schema. Unsigned: every answer is the protocol's 401 error, except the
documented public enrollment call. Each run spreads `LEADOPS_FUZZ_CASES` cases over the operations
(default 600: `make test`); `make test-fuzz` runs 5,000 per run, 10,000 in all. The counts are
printed (docs/CONTRIBUTING.md, "Fuzzing").
"""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings
from django.urls import Resolver404, resolve

from tests.fuzz import harness

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

# The public call: a worker enrolls before it has a key (docs/API.md, "Enrollment").
PUBLIC_OPERATIONS = {"POST /api/v1/enroll"}


def cases() -> int:
    return int(os.environ.get("LEADOPS_FUZZ_CASES", "600"))


@pytest.fixture
def fuzz_settings(settings):
    # Failed authentications are budgeted per source IP (429 after a burst); the unsigned run is
    # nothing but failed authentications from one address.
    for name in ("IP", "WORKER"):
        setattr(settings, f"LEADOPS_AUTH_FAILURES_{name}_PER_MIN", 10**9)
        setattr(settings, f"LEADOPS_AUTH_FAILURES_{name}_BURST", 10**9)
    settings.LEADOPS_ENROLL_FAILURES_IP_PER_MIN = 10**9
    settings.LEADOPS_ENROLL_FAILURES_IP_BURST = 10**9
    return settings


def test_signed_requests_never_get_a_5xx_and_every_answer_matches_the_schema(
        client, fuzz_settings, django_user_model, record_property):
    from tests.factories import make_jobs, make_worker

    _, issued = make_worker(worker_id="w-fuzz", rate_limit_per_min=10**6)
    make_jobs(3)
    staff = django_user_model.objects.create_superuser("fuzz-staff", password="x-Unused-9")
    schema = harness.load_schema(client)
    client.force_login(staff)
    tally = harness.Tally()

    def exercise(operation, case):
        sent = harness.prepare(case)
        if sent is None:
            return
        harness.sign(sent, worker_id=issued.worker_id, key_id=issued.key_id, secret=issued.secret)
        started = time.perf_counter()
        response = harness.send(client, sent)
        answer = harness.as_schemathesis_response(response, sent, time.perf_counter() - started)
        tally.count(harness.label(operation), response.status_code)
        case.validate_response(answer, checks=harness.CHECKS)

    harness.run(schema, cases=cases(), tally=tally, exercise=exercise)
    record_property("fuzz_cases", tally.cases)
    record_property("fuzz_report", tally.line("schemathesis, signed"))
    # Hypothesis stops early only when an operation has fewer distinct cases than asked.
    assert tally.cases >= cases() * 0.95, tally.line("schemathesis, signed")


def test_unsigned_requests_all_get_the_protocol_401(client, fuzz_settings, record_property):
    schema = harness.load_schema(client)
    tally = harness.Tally()

    def exercise(operation, case):
        sent = harness.prepare(case)
        if sent is None:
            return
        response = harness.send(client, sent)
        tally.count(harness.label(operation), response.status_code)
        if harness.label(operation) in PUBLIC_OPERATIONS:
            assert response.status_code < 500, (sent, response.content[:300])
            return
        try:
            resolve(sent.path)
        except Resolver404:
            # A path parameter the route cannot take (negative cases): no endpoint, the API's 404.
            expected = (404, "not_found")
        else:
            expected = (401, "unauthorized")
        if len(sent.body) > settings.LEADOPS_MAX_BODY_BYTES:
            # An oversized body is refused before it is read or authenticated (docs/API.md, limits).
            expected = (413, "payload_too_large")
        body = response.json()
        assert (response.status_code, body["error"]["code"]) == expected, (sent.method, sent.path, body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body

    harness.run(schema, cases=cases(), tally=tally, exercise=exercise)
    record_property("fuzz_cases", tally.cases)
    record_property("fuzz_report", tally.line("schemathesis, unsigned"))
    # Hypothesis stops early only when an operation has fewer distinct cases than asked.
    assert tally.cases >= cases() * 0.95, tally.line("schemathesis, unsigned")
