"""The client address behind the reverse proxy, for the WSGI server.

daphne takes the client address from `X-Forwarded-For` with `--proxy-headers`; gunicorn does not
(its `--forwarded-allow-ips` only covers the scheme). The portal reads the client address from
`REMOTE_ADDR` (a worker's `last_ip`, the per-IP budget of failed authentications, the credential
audit), so behind the proxy every request would seem to come from the proxy itself. This WSGI
wrapper puts the address the proxy saw into `REMOTE_ADDR`, but only for requests that come from a
trusted proxy: over a unix socket (no peer address) or from an address in
`LEADOPS_TRUSTED_PROXIES` (default `127.0.0.1,::1`). The proxy must overwrite `X-Forwarded-For`
(nginx: `proxy_set_header X-Forwarded-For $remote_addr;`); the last entry is the one it added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def trusted_proxies() -> frozenset[str]:
    from django.conf import settings

    return frozenset(settings.LEADOPS_TRUSTED_PROXIES)


class ForwardedFor:
    def __init__(self, app: WSGIApp, trusted: frozenset[str] | None = None) -> None:
        self.app = app
        self.trusted = trusted_proxies() if trusted is None else trusted

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR") or ""
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and (not peer or peer in self.trusted):
            client = forwarded.rsplit(",", 1)[-1].strip()
            if client:
                environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)
