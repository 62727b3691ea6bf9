"""Every answer under /api/ has the protocol's error shape, also for a path no route takes (docs/API.md,
"Errors"), in development and production settings alike."""

from __future__ import annotations

import pytest

UNROUTED = [
    ("post", "/api/v1/jobs/null,null/report"),
    ("post", "/api/v1/jobs/null,null/extend"),
    ("post", "/api/v1/jobs/null,null/evidence"),
    ("get", "/api/v1/no/such/endpoint"),
    ("delete", "/api/v2/jobs"),
    # A path that only lacks its trailing slash: no redirect (it would drop a POST's body), a 404.
    ("post", "/api/v1/schema"),
]


@pytest.mark.parametrize("debug", [True, False], ids=["development", "production"])
@pytest.mark.parametrize("method, path", UNROUTED)
def test_unrouted_api_path_answers_the_json_404(client, settings, debug, method, path):
    settings.DEBUG = debug
    body = {} if method == "get" else {"data": b"{}", "content_type": "application/json"}
    response = getattr(client, method)(path, **body)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": {"code": "not_found", "message": "No such endpoint."}}


@pytest.mark.parametrize("debug", [True, False], ids=["development", "production"])
def test_wrong_method_on_an_api_path_answers_the_json_405(client, settings, debug, db):
    settings.DEBUG = debug
    response = client.delete("/api/v1/schema/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed" and "GET" in response["Allow"]


def test_pages_outside_the_api_keep_django_s_404(client, settings):
    settings.DEBUG = False
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
