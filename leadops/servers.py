"""The command lines of the portal's HTTP servers, in one place.

The bench compares them (`make bench`, docs/PERFORMANCE.md, "Which server"), the end-to-end tests
start them (`tests/e2e/servers.py`), and the deployment units in `deploy/` spell the same options
(docs/DEPLOY.md). `CHOSEN` is the server of the portal, picked by measurement; `ASYNC` is the one
that must serve WebSockets (`/ws/`) and the Server-Sent Events stream (`/api/v1/monitor/events`).

Nothing here imports Django: the caller gives the environment.
"""

from __future__ import annotations

import functools
import sys

# ASGI servers serve `leadops.asgi:application` (HTTP and WebSockets); WSGI servers serve
# `leadops.wsgi:application` (HTTP only).
KINDS = ("daphne", "uvicorn", "gunicorn-sync", "gunicorn-gthread", "granian-wsgi", "granian-asgi")
ASGI_KINDS = frozenset({"daphne", "uvicorn", "granian-asgi"})

# The server of production, of the API rows of `make bench` and of the end-to-end tests. No other
# server used less CPU per job in every run of the side-by-side comparison (docs/PERFORMANCE.md,
# "Which server"), and daphne also serves WebSockets, so one server runs everything.
CHOSEN = "daphne"
# The server of WebSockets (`/ws/`) and the SSE stream, which need ASGI.
ASYNC = "daphne"

# Threads per process of the threaded servers: a sync request thread per concurrent request while
# others wait on PostgreSQL. Django's sync code holds the GIL for most of a request, so more threads
# buy little CPU; they keep a long poll (`wait_s`) from blocking the process.
THREADS = 8
# Seconds a request may take before gunicorn restarts the worker: above the longest long poll (60 s).
TIMEOUT_S = 90


def server_command(kind: str, *, port: int, host: str = "127.0.0.1", processes: int = 1,
                   threads: int = THREADS, python: str = sys.executable, proxy_headers: bool = False
                   ) -> list[str]:
    """The argv that serves the portal with `kind` on host:port in `processes` processes.

    daphne has no worker processes of its own: run one command per process, each on its own port
    (or unix socket), and spread the clients over them as a proxy would. `proxy_headers`: behind a
    proxy, take the client address from `X-Forwarded-For` (daphne only; production, `deploy/`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "daphne":
        if processes != 1:
            raise ValueError("daphne runs one process per command: start several on several ports")
        proxy = ["--proxy-headers"] if proxy_headers else []
        return [python, "-m", "daphne", "-b", host, "-p", str(port), *proxy, "leadops.asgi:application"]
    if kind == "uvicorn":
        return [python, "-m", "uvicorn", "leadops.asgi:application", "--host", host, "--port", str(port),
                "--workers", str(processes), "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
                "--no-access-log", "--log-level", "warning"]
    if kind.startswith("gunicorn-"):
        worker_class = kind.removeprefix("gunicorn-")
        command = [python, "-m", "gunicorn", "leadops.wsgi:application", "--bind", f"{host}:{port}",
                   "--workers", str(processes), "--worker-class", worker_class, "--timeout", str(TIMEOUT_S),
                   "--log-level", "warning"]
        if worker_class == "gthread":
            command += ["--threads", str(threads)]
        return command
    interface = kind.removeprefix("granian-")
    target = "leadops.asgi:application" if interface == "asgi" else "leadops.wsgi:application"
    command = [python, "-m", "granian", "--interface", interface, "--host", host, "--port", str(port),
               "--workers", str(processes), "--log-level", "warning",
               "--no-ws" if interface == "wsgi" else "--ws"]
    if interface == "wsgi":
        command += ["--blocking-threads", str(threads)]
    return [*command, target]


def freeze_startup_heap() -> None:
    """Keep the cyclic garbage collector off everything built at start-up (both entry points call it).

    Django, the apps, URL patterns and phonenumbers' metadata live as long as the process. Freezing
    them keeps the collector from scanning them again and again: a 500-lead report creates thousands
    of short-lived containers, and without this each report paid several milliseconds of full
    collections over objects that can never be garbage. Young collections also run less often;
    request objects are freed by reference counting anyway.
    """
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def cache_content_type_parse() -> None:
    """Under daphne, parse each distinct `Content-Type` once instead of once per request.

    Twisted parses every request's `Content-Type` through `email`'s header registry (building an
    `EmailMessage` to read one media type): 6% of a signed heartbeat's server CPU in py-spy
    (docs/PERFORMANCE.md, "The heartbeat, round two"). The function is pure, bytes in and bytes
    out, so a bounded cache answers the same; a client cycling through odd values only evicts.
    """
    http = sys.modules.get("twisted.web.http")
    parse = getattr(http, "_parseContentType", None)
    if parse is None or hasattr(parse, "cache_info"):
        return
    http._parseContentType = functools.lru_cache(maxsize=256)(parse)  # type: ignore[union-attr]
