"""The OpenAPI schema at /api/v1/schema/ documents every worker path, the signing and the errors."""

from __future__ import annotations

import json
import re

import pytest

from queueing import urls as queueing_urls
from workers_mgmt import urls as workers_urls

# The worker paths of docs/API.md (and staff enqueue) that this foundation builds.
DESIGN_PATHS = {
    "/api/v1/heartbeat", "/api/v1/config", "/api/v1/jobs/pull", "/api/v1/jobs/{job_id}/extend",
    "/api/v1/jobs/release", "/api/v1/jobs/{job_id}/report", "/api/v1/jobs", "/api/v1/jobs/exchange",
}
WORKER_PATHS = DESIGN_PATHS - {"/api/v1/jobs"}


def routed_paths() -> set[str]:
    """The API paths of the two apps' URL confs, written the OpenAPI way (`{job_id}`)."""
    paths = set()
    for module in (workers_urls, queueing_urls):
        for pattern in module.urlpatterns:
            route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
            paths.add("/api/v1/" + route)
    return paths


@pytest.fixture
def schema(admin_client):
    response = admin_client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


def test_schema_is_yaml_by_default(admin_client):
    response = admin_client.get("/api/v1/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: ")


def test_schema_as_json_by_accept_header(admin_client):
    response = admin_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert json.loads(response.content)["openapi"].startswith("3.")


def test_schema_lists_every_routed_design_path(schema):
    routed = routed_paths()
    assert routed >= DESIGN_PATHS, routed ^ DESIGN_PATHS
    missing = sorted(path for path in routed if path not in schema["paths"])
    assert not missing, missing


def test_worker_operations_require_the_signature_scheme(schema):
    scheme = schema["components"]["securitySchemes"]["LeadOpsSignature"]
    assert scheme["in"] == "header" and scheme["name"] == "Authorization"
    for path in WORKER_PATHS:
        for method, operation in schema["paths"][path].items():
            assert {"LeadOpsSignature": []} in operation.get("security", []), (method, path)


def test_report_documents_its_errors_with_the_error_schema(schema):
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["properties"]) >= {"code", "message", "fields"}
    report = schema["paths"]["/api/v1/jobs/{job_id}/report"]["post"]
    for status in ("401", "409", "422"):
        content = report["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}, status
    header_names = [p["name"] for p in report.get("parameters", []) if p["in"] == "header"]
    assert "Idempotency-Key" in header_names


def test_exchange_documents_its_request_and_answer(schema):
    exchange = schema["paths"]["/api/v1/jobs/exchange"]["post"]
    assert exchange["operationId"] == "jobs_exchange"
    components = schema["components"]["schemas"]
    request = components["ExchangeIn"]["properties"]
    assert set(request) == {"reports", "pull"}
    item = components["ExchangeReportIn"]["properties"]
    assert {"job_id", "idempotency_key", "attempt_id", "outcome", "leads", "error"} <= set(item)
    answer = components["ExchangeOut"]
    assert set(answer["properties"]) == {"results", "jobs", "retry_after_s",
                                         # when the answer stands in for a heartbeat (docs/API.md, "Liveness")
                                         "config_version", "update_target", "credentials"}
    assert set(answer["required"]) == {"results", "jobs", "retry_after_s"}
    assert set(components["ExchangeResultOut"]["properties"]) == {"job_id", "status", "body"}
    assert "200" in exchange["responses"]


def test_heartbeat_answer_documents_the_update_target(schema):
    components = schema["components"]["schemas"]
    heartbeat = components["HeartbeatOut"]
    assert "update_target" in heartbeat["required"]
    target = heartbeat["properties"]["update_target"]
    assert target["nullable"] is True
    assert target["allOf"] == [{"$ref": "#/components/schemas/UpdateTargetOut"}]
    out = components["UpdateTargetOut"]
    assert set(out["properties"]) == set(out["required"]) == {"version", "sequence"}
    assert (out["properties"]["version"]["type"], out["properties"]["sequence"]["type"]) == ("string", "integer")
