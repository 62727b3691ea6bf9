"""Regression tests, one per thing the fuzzers found (docs/CHANGELOG.md, "Fuzzing and hardening")."""

from __future__ import annotations

import json

import pytest

from ingestion.normalize import normalize_phone
from tests.signing import signed_headers


@pytest.mark.parametrize("raw", ["0100000", "050001231", "+٦00000000000", "+600000000000"])
def test_a_phone_whose_e164_reads_back_as_another_number_is_unusable(raw):
    result = normalize_phone(raw)
    assert not result.usable and result.e164 is None


def test_nested_field_errors_match_the_served_schema(admin_client):
    schema = admin_client.get("/api/v1/schema/", {"format": "json"}).json()
    field_errors = schema["components"]["schemas"]["FieldErrors"]
    nested = field_errors["additionalProperties"]["anyOf"]
    assert {"$ref": "#/components/schemas/FieldErrors"} in nested
    response = admin_client.post("/api/v1/jobs", {"provider": "maps", "payloads": [{}, "not an object"]},
                                 content_type="application/json")
    assert response.status_code == 422
    assert isinstance(response.json()["error"]["fields"]["payloads"], dict)


@pytest.mark.django_db
def test_a_wsgi_server_raw_path_is_what_the_signature_covers(client):
    from tests.factories import make_worker

    _, issued = make_worker(worker_id="w-raw")
    path = "/api/v1/releases/v%241/download"  # "$" escaped, as HTTP clients send it
    headers = signed_headers(method="GET", path=path, worker_id=issued.worker_id, key_id=issued.key_id,
                             secret=issued.secret)
    # gunicorn hands the request line over as RAW_URI: the signature over the escaped path holds,
    # and the answer is about the (missing) release, not a refused signature.
    response = client.get(path, headers=headers, RAW_URI=path)
    assert response.status_code == 404, json.loads(response.content)
