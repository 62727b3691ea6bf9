"""Every URL of the project refuses an anonymous or unsigned caller, except a named allow-list.

The list of URLs is built from the resolver (and the WebSocket routes), never by hand: a new URL
without protection makes this test fail until it is protected or named in `PUBLIC` with the reason.
"""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver

from leadops.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db

# Route patterns of the URLs anyone may call, and why.
PUBLIC = {
    "": "redirects to the admin index, which asks for a login",
    "admin/login/": "the login page",
    "admin/logout/": "logging out needs no login (it ends a session, if any)",
    "api/v1/schema/": "the OpenAPI document is public (docs/API.md, 'OpenAPI')",
    "api/v1/enroll": "a worker enrolls before it has a key; the one-time token in the body is the proof",
}
SAMPLE_BY_CONVERTER = {"int": "1", "str": "x1", "path": "1", "slug": "x1",
                       "uuid": "00000000-0000-0000-0000-000000000001"}


def _route_sample(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_BY_CONVERTER[m.group(1) or "str"], route)


def _regex_sample(regex: str) -> str:
    text = regex.lstrip("^").rstrip("$")
    # A named group of alternatives (the admin's app list): take the first; any other group: "x".
    text = re.sub(r"\(\?P<\w+>([\w-]+)(?:\|[\w|-]+)?\)", r"\1", text)
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "x-unknown/", text)
    return text.replace("\\", "")


def project_urls() -> list[tuple[str, str]]:
    """(route as written, a concrete path that resolves to it) for every pattern of the project."""
    found = []

    def walk(patterns, route_prefix: str, path_prefix: str) -> None:
        for pattern in patterns:
            written = str(pattern.pattern)
            sample = (_regex_sample(written) if pattern.pattern.__class__.__name__ == "RegexPattern"
                      else _route_sample(written))
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route_prefix + written, path_prefix + sample)
            elif isinstance(pattern, URLPattern):
                found.append((route_prefix + written, "/" + path_prefix + sample))

    walk(get_resolver().url_patterns, "", "")
    return found


URLS = project_urls()


def test_the_walk_finds_every_kind_of_url():
    routes = {route for route, _ in URLS}
    assert {"admin/monitor/", "metrics", "api/v1/monitor/events", "api/v1/jobs/<int:job_id>/report",
            "admin/queueing/job/<path:object_id>/change/"} <= routes
    assert len(URLS) > 100


def test_the_allow_list_names_only_real_urls():
    routes = {route for route, _ in URLS}
    assert set(PUBLIC) <= routes, set(PUBLIC) - routes


def _refused(route: str, path: str, response) -> str | None:
    """Why this answer is not a refusal of an anonymous caller (None when it is one)."""
    status = response.status_code
    if status == 405:
        return None  # a method the URL does not take: nothing is served
    if route.startswith("admin/"):
        if status == 302 and response["Location"].startswith("/admin/login/"):
            return None
        return f"{status}, expected a redirect to the login page"
    if route.startswith("api/"):
        if status != 401:
            return f"{status}, expected 401"
        body = response.json()
        if body != {"error": {"code": "unauthorized", "message": body.get("error", {}).get("message")}}:
            return f"401 without the protocol's error shape: {body}"
        return None
    if status in (401, 403) or (status == 302 and "/login/" in response["Location"]):
        return None
    return f"{status}, expected 401, 403 or a redirect to a login page"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_every_url_refuses_an_anonymous_caller(client, settings, method):
    # Each refused call spends the source address's failed-authentication budget; past it the
    # answer is 429, also a refusal, but this test wants to see every URL's own 401.
    settings.LEADOPS_AUTH_FAILURES_IP_PER_MIN = settings.LEADOPS_AUTH_FAILURES_IP_BURST = 10**6
    problems = []
    for route, path in URLS:
        if route in PUBLIC:
            continue
        response = client.generic(method, path, data=b"{}", content_type="application/json")
        problem = _refused(route, path, response)
        if problem is not None:
            problems.append(f"{method} {path} ({route}): {problem}")
    assert not problems, "\n".join(problems)


def test_every_url_refuses_a_logged_in_non_staff_user(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="x-Unused-9")
    client.force_login(user)
    problems = []
    for route, path in URLS:
        if route in PUBLIC:
            continue
        response = client.get(path)
        if response.status_code < 300 or (response.status_code == 302 and "/login/" not in response["Location"]):
            problems.append(f"{path} ({route}): {response.status_code}")
    assert not problems, problems


@pytest.mark.parametrize("route", [str(p.pattern) for p in websocket_urlpatterns])
def test_every_websocket_route_refuses_anonymous(transactional_db, route):
    from channels.layers import channel_layers

    from leadops.asgi import application

    channel_layers.backends.clear()
    communicator = WebsocketCommunicator(application, "/" + _route_sample(route),
                                         headers=[(b"origin", b"http://testserver"), (b"host", b"testserver")])

    async def close_code():
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return None if connected else code

    assert async_to_sync(close_code)() == 4401
    channel_layers.backends.clear()
