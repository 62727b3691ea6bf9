"""Admin search and list filters take SQL-ish and regex-ish input without a 500, as staff.

Every registered ModelAdmin is walked (a new one is covered without editing this test): its search
box (`?q=`) gets each payload, and each parameter of each list filter a junk value.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

# Each stands for a family: quoting, comment and stacked query, LIKE wildcards and escapes, regex
# syntax, a NUL (PostgreSQL refuses it in a string), a number past bigint, direction marks and
# non-BMP text, and a very long term.
PAYLOADS = ["' OR '1'='1 --", "1; DROP TABLE auth_user; --", "%_\\%", "(?i)a|[((", "a\x00b",
            "99999999999999999999999999", "\u202e\u0661\u0662 🙂", "a" * 1000]
JUNK_FILTER_VALUES = ["' OR 1=1 --", "a\x00b"]


def answer(client, url, params) -> str | None:
    """None when the page answered (200, the admin's redirect for a bad filter, or 400 for a NUL in
    the query string); else the problem."""
    try:
        response = client.get(url, params)
    except Exception as error:  # the test client re-raises what a view raised: that would be a 500
        return f"{type(error).__name__}: {str(error)[:80]}"
    return None if response.status_code in (200, 302, 400) else str(response.status_code)


def admins():
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def changelist_url(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def filter_parameters(model_admin, superuser) -> list[str]:
    request = RequestFactory().get("/")
    request.user = superuser
    changelist = model_admin.get_changelist_instance(request)
    return [name for spec in changelist.filter_specs for name in spec.expected_parameters()]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("inj-admin", password="x-Unused-9")


def survey(client, pages) -> list[str]:
    """The problems of every (label, url, parameters) page: a 500 or an unexpected status each."""
    return [f"{label}: {problem}" for label, url, params in pages if (problem := answer(client, url, params))]


def test_every_admin_search_survives_injection_payloads(client, superuser):
    client.force_login(superuser)
    searchable = [(model, model_admin) for model, model_admin in admins() if model_admin.search_fields]
    problems = survey(client, [(f"{model._meta.label} q={payload[:40]!r}", changelist_url(model), {"q": payload})
                               for model, _ in searchable for payload in PAYLOADS])
    assert len(searchable) >= 10
    assert not problems, "\n".join(problems)


def test_every_admin_list_filter_survives_junk_values(client, superuser):
    client.force_login(superuser)
    filters = [(model, parameter) for model, model_admin in admins()
               for parameter in filter_parameters(model_admin, superuser)]
    problems = survey(client, [(f"{model._meta.label} {parameter}={junk!r}", changelist_url(model), {parameter: junk})
                               for model, parameter in filters for junk in JUNK_FILTER_VALUES])
    assert len(filters) >= 20
    assert not problems, "\n".join(problems)


def test_a_nul_in_an_admin_filter_is_a_400_not_a_database_error(client, superuser):
    client.force_login(superuser)
    response = client.get("/admin/queueing/job/", {"state__exact": "a\x00b"})
    assert response.status_code == 400


def test_a_nul_in_an_api_query_is_left_to_the_api(client):
    # Unsigned: the 401 as always, not a 400 from the NUL guard of the admin pages.
    response = client.get("/api/v1/updates/check", {"channel": "\x00"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
