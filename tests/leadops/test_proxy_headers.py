"""Behind the proxy the WSGI server sees the proxy's address; leadops.proxy.ForwardedFor puts the
client's address (the proxy's X-Forwarded-For) into REMOTE_ADDR, only for a trusted proxy."""

from __future__ import annotations

from leadops.proxy import ForwardedFor


def seen_address(environ: dict) -> str | None:
    seen = {}

    def app(env, start_response):
        seen["ip"] = env.get("REMOTE_ADDR")
        return [b""]

    ForwardedFor(app, trusted=frozenset({"127.0.0.1"}))(environ, lambda *a: None)
    return seen["ip"]


def test_a_trusted_proxy_passes_the_client_address():
    assert seen_address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "203.0.113.9"


def test_over_a_unix_socket_the_proxy_is_trusted():
    assert seen_address({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "203.0.113.9"


def test_the_last_entry_is_the_one_the_proxy_added():
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "10.9.9.9, 203.0.113.9"}
    assert seen_address(environ) == "203.0.113.9"


def test_a_client_cannot_choose_its_address_by_sending_the_header_itself():
    environ = {"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert seen_address(environ) == "198.51.100.7"


def test_without_the_header_nothing_changes():
    assert seen_address({"REMOTE_ADDR": "127.0.0.1"}) == "127.0.0.1"
