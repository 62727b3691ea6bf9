"""Security headers: HSTS behind TLS, CSP on the admin's own pages, nosniff, Referrer-Policy."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

ADMIN_PAGES = ["/admin/", "/admin/monitor/", "/admin/monitor/workers/", "/admin/releases_app/release/",
               "/admin/releases_app/rollout/", "/admin/queueing/job/", "/admin/workers_mgmt/worker/"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_carry_a_csp_that_allows_only_own_scripts(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    # No inline script on the page could run under that policy: there is none.
    assert b"<script>" not in response.content


def test_the_login_page_carries_the_csp(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200 and "script-src 'self'" in response["Content-Security-Policy"]


def test_json_answers_carry_no_csp(client):
    response = client.get("/api/v1/config")
    assert response.status_code == 401 and "Content-Security-Policy" not in response


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/config", "/metrics"])
def test_every_answer_says_nosniff(client, path):
    assert client.get(path)["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/admin/login/", "/api/v1/config"])
def test_every_answer_has_a_same_origin_referrer_policy(client, path):
    assert client.get(path)["Referrer-Policy"] == "same-origin"


def test_hsts_is_sent_over_tls_only(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    over_tls = client.get("/admin/login/", secure=True)
    assert over_tls["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in client.get("/admin/login/")


def test_admin_pages_cannot_be_framed(admin_client):
    assert admin_client.get("/admin/")["X-Frame-Options"] == "DENY"
