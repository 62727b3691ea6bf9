"""ASGI middleware: the heartbeat's lane on the event loop, in front of Django (docs/PERFORMANCE.md,
"The heartbeat on the loop"; docs/DEPLOY.md, "The heartbeat lane").

For `POST /api/v1/heartbeat` it reads the body and asks `workers_mgmt.heartbeat_lane` for the answer.
When there is one, it sends it with the headers Django's middleware writes on that answer (the
security headers, `X-Frame-Options`, `Content-Length`, the view's `Allow`) and records the request's
latency as `RequestLatencyMiddleware` does. Every other request, and any heartbeat the lane does not
take (any refusal, another host, plain HTTP where HTTPS is required, a body too large), goes to Django
unchanged, its body replayed as it came.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework.renderers import JSONRenderer

from leadops.metrics import REQUEST_LATENCY
from workers_mgmt.heartbeat_lane import PATH, heartbeat_answer, lane_enabled

logger = logging.getLogger(__name__)

_JSON_TYPES = (b"application/json", b"application/json; charset=utf-8", b"application/json;charset=utf-8")
_renderer = JSONRenderer()


class HeartbeatLane:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST"
                or scope.get("query_string") or not lane_enabled()):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])  # names are lower case in ASGI
        secure = _secure(scope, headers)
        body, more, message = await _body(receive)
        answer = None
        # A repeated header is one Django joins with commas: the view judges that request.
        if (message is None and not more and len(headers) == len(scope["headers"]) and _host_allowed(headers)
                and (secure or not settings.SECURE_SSL_REDIRECT)
                and headers.get(b"content-type", b"").lower() in _JSON_TYPES
                and not settings.DISALLOWED_USER_AGENTS and not settings.PREPEND_WWW):
            client = scope.get("client")
            try:
                answer = await heartbeat_answer(headers=headers, body=body, raw_path=_raw_path(scope),
                                                ip=client[0] if client else None)
            except Exception as exc:
                # Whatever it took was given back or not taken: the view answers, as it would have.
                # The error's class only: a driver's message may quote the request's values.
                logger.warning("heartbeat lane failed (%s); the view answers", type(exc).__name__)
                answer = None
        if answer is None:
            await self.app(scope, _replay(body, more, message, receive), send)
            return
        content = _renderer.render(answer)
        await send({"type": "http.response.start", "status": 200,
                    "headers": _answer_headers(secure, len(content))})
        await send({"type": "http.response.body", "body": content})
        REQUEST_LATENCY.labels(route=_route(), method="POST").observe(time.perf_counter() - started)


async def _body(receive: Any) -> tuple[bytes, bool, dict[str, Any] | None]:
    """The request's body up to the size limit: (bytes, more to come, a message that was not body)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False, message  # the client left: Django sees it as it would
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False, None
        if size > settings.LEADOPS_MAX_BODY_BYTES:
            return b"".join(chunks), True, None


def _replay(body: bytes, more: bool, message: dict[str, Any] | None, receive: Any) -> Any:
    """A `receive` that gives the application the body read so far, then what the client sends next."""
    pending: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": more}]
    if message is not None:
        pending.append(message)

    async def replayed() -> dict[str, Any]:
        return pending.pop(0) if pending else await receive()

    return replayed


def _raw_path(scope: dict[str, Any]) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1").split("?", 1)[0] if raw else PATH


def _secure(scope: dict[str, Any], headers: dict[bytes, bytes]) -> bool:
    """`HttpRequest.is_secure()`: the proxy's header when one is configured and sent, else the scheme."""
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, expected = proxy
        sent = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1"))
        if sent is not None:
            return sent.decode("latin-1").split(",", 1)[0].strip() == expected
    return scope.get("scheme") == "https"


def _host_allowed(headers: dict[bytes, bytes]) -> bool:
    """`HttpRequest.get_host()` would not refuse it (CommonMiddleware asks it of every request)."""
    if settings.USE_X_FORWARDED_HOST or b"host" not in headers:
        return False
    return _host_valid(headers[b"host"].decode("latin-1"), tuple(settings.ALLOWED_HOSTS), settings.DEBUG)


@lru_cache(maxsize=64)
def _host_valid(host: str, allowed: tuple[str, ...], debug: bool) -> bool:
    domain, _port = split_domain_port(host)
    hosts = list(allowed) or ([".localhost", "127.0.0.1", "[::1]"] if debug else [])
    return bool(domain) and validate_host(domain, hosts)


def _answer_headers(secure: bool, length: int) -> list[tuple[bytes, bytes]]:
    """What the view and Django's middleware put on an accepted heartbeat (tests hold the two equal)."""
    headers = [(b"Content-Type", b"application/json"), (b"Allow", b"POST, OPTIONS"),
               (b"X-Frame-Options", settings.X_FRAME_OPTIONS.upper().encode()),
               (b"Content-Length", str(length).encode())]
    if secure and settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append((b"Strict-Transport-Security", hsts.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"X-Content-Type-Options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        parts = policy.split(",") if isinstance(policy, str) else policy
        value = ",".join(part.strip() for part in parts)
        headers.append((b"Referrer-Policy", value.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return headers


@lru_cache(maxsize=1)
def _route() -> str:
    """The heartbeat's URL route, the latency metric's label (never the raw path)."""
    from django.urls import resolve

    return str(resolve(PATH).route)
