"""Long polls that wait in the event loop (docs/API.md, "Long poll"; docs/PERFORMANCE.md, "Long polls").

`POST /jobs/pull` with `wait_s` runs the usual Django view first: the signature is checked, the
worker's liveness refreshed, a claim tried. When it finds nothing and may wait, the view leaves a
`LongPoll` in the ASGI scope and answers as if the wait had ended empty. This ASGI middleware holds
that answer back, and the request has then ended as far as Django is concerned: its thread is gone
and its database connection closed or back in the pool. The wait itself is an asyncio wait on this
process's `waker` (queueing/wakeup.py). When woken, a claim runs on a small thread pool (a short
transaction, its connection given back at once); a job found is put into the held answer. The
answer goes out when a job was claimed, when the worker's own breaker opened, when its key stopped
being valid, or when the wait is over. A worker that hangs up while waiting is never handed a job:
one claimed for it as it hung up goes back to the queue at once.

Under a WSGI server there is no event loop: the view waits the old way (queueing/api.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from core.errors import BACKEND_RETRY_AFTER_S, BACKEND_UNAVAILABLE, error_body
from queueing import services
from queueing.wakeup import waker

logger = logging.getLogger(__name__)

# The scope key that says this request may wait in the event loop, and the one the view fills.
SCOPE_ALLOWED = "leadops.long_poll_allowed"
SCOPE_WAIT = "leadops.long_poll"
PULL_PATH = "/api/v1/jobs/pull"


@dataclass
class LongPoll:
    """What a woken long poll needs to claim again for the same worker, and until when."""

    worker_id: str
    key_id: str
    max_jobs: int
    providers: list[str] | None
    deadline: float  # time.monotonic()
    # The answer stands in for a heartbeat (docs/API.md, "Liveness"): its fields are read again when
    # the wait ends, so they are as fresh as a heartbeat's would be then.
    stands_in: bool = False


@dataclass(frozen=True)
class _Outcome:
    jobs: list[dict[str, Any]]
    retry_after_s: int | None = None  # set when the answer must go out now without jobs


_executor: ThreadPoolExecutor | None = None


def _claims() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.LEADOPS_LONG_POLL_THREADS,
                                       thread_name_prefix="long-poll-claim")
    return _executor


def long_poll_allowed(request: Any) -> bool:
    """Whether this request's server can wait in its event loop (an ASGI server with this middleware)."""
    scope = getattr(request, "scope", None)
    return bool(scope and scope.get(SCOPE_ALLOWED))


def long_poll_defer(request: Any, poll: LongPoll) -> None:
    request.scope[SCOPE_WAIT] = poll


def _claim_again(poll: LongPoll) -> _Outcome | None:
    """One claim for a woken waiter, on a claim thread; None when there is still nothing."""
    from workers_mgmt.auth import signer_current

    close_old_connections()
    try:
        worker = signer_current(worker_id=poll.worker_id, key_id=poll.key_id)
        if worker is None:  # revoked, disabled or expired while waiting: the next request is told why
            return _Outcome(jobs=[], retry_after_s=1)
        result = services.jobs_pull(worker=worker, max_jobs=poll.max_jobs, providers=poll.providers)
        if result.claims:
            return _Outcome(jobs=[claim.as_dict() for claim in result.claims])
        if result.worker_blocked:
            return _Outcome(jobs=[], retry_after_s=max(1, int(result.throttled_for_s or 1)))
        return None
    finally:
        close_old_connections()


def _release_unsent(poll: LongPoll, jobs: list[dict[str, Any]]) -> None:
    """Give back jobs claimed for a waiter whose worker hung up before they could be sent."""
    from workers_mgmt.models import Worker

    close_old_connections()
    try:
        worker = Worker.objects.filter(pk=poll.worker_id).first()
        if worker is not None:
            services.jobs_release(worker=worker, attempt_ids=[job["attempt_id"] for job in jobs])
    finally:
        close_old_connections()


def _standin_fresh(poll: LongPoll) -> dict[str, Any]:
    """The heartbeat's `config_version` and `update_target` as of the end of the wait."""
    from workers_mgmt.api import update_target_for
    from workers_mgmt.services import worker_config_recent

    close_old_connections()
    try:
        return {"config_version": worker_config_recent().version,
                "update_target": update_target_for(poll.worker_id)}
    finally:
        close_old_connections()


async def _unavailable(send: Any, exc: BaseException) -> None:
    logger.warning("backing service unavailable during a long poll (%s); answered 503", type(exc).__name__)
    content = json.dumps(error_body("service_unavailable", "A backing service is briefly unavailable; retry.")
                         ).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode()),
                            (b"retry-after", str(BACKEND_RETRY_AFTER_S).encode())]})
    await send({"type": "http.response.body", "body": content})


async def _client_gone(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


GONE = _Outcome(jobs=[])


async def _wait(poll: LongPoll, receive: Any, gone: asyncio.Future[Any] | None = None) -> _Outcome | None:
    """Wait for work: the outcome to answer with, None when the wait ended empty, GONE when the
    client hung up (nothing is sent). `gone`, when given, is the caller's watch on the client."""
    loop = asyncio.get_running_loop()
    owned = gone is None
    gone = asyncio.ensure_future(_client_gone(receive)) if gone is None else gone
    try:
        while (left := poll.deadline - time.monotonic()) > 0:
            woken = asyncio.ensure_future(waker.wait(left))
            await asyncio.wait([woken, gone], return_when=asyncio.FIRST_COMPLETED)
            if gone.done():
                woken.cancel()
                return GONE
            if not woken.result():
                return None
            outcome = await loop.run_in_executor(_claims(), _claim_again, poll)
            if gone.done() and outcome is not None and outcome.jobs:
                # Claimed as the worker hung up: nobody will work them. They go back to the queue at
                # once, their attempt not counted, rather than waiting for the lease to lapse.
                await loop.run_in_executor(_claims(), _release_unsent, poll, outcome.jobs)
                return GONE
            if outcome is not None:
                if outcome.jobs:
                    waker.wake(1)  # there may be more: let the next waiter look
                return outcome
        return None
    finally:
        if owned:
            gone.cancel()


class LongPollMiddleware:
    """ASGI middleware in front of Django's handler for `POST /api/v1/jobs/pull` (leadops/asgi.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != PULL_PATH:
            await self.app(scope, receive, send)
            return
        scope = {**scope, SCOPE_ALLOWED: True}
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and isinstance(scope.get(SCOPE_WAIT), LongPoll):
                held["start"] = message
                return
            if "start" in held and message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                return
            await send(message)

        await self.app(scope, receive, capture)
        if "start" not in held:
            return
        poll: LongPoll = scope[SCOPE_WAIT]
        gone = asyncio.ensure_future(_client_gone(receive))
        try:
            outcome = await _wait(poll, receive, gone)
            if outcome is GONE:
                return
            content = b"".join(body)
            if outcome is not None or poll.stands_in:
                answer = json.loads(content)
                if outcome is not None:
                    answer["jobs"] = outcome.jobs
                    if outcome.retry_after_s is not None:
                        answer["retry_after_s"] = outcome.retry_after_s
                if poll.stands_in:
                    loop = asyncio.get_running_loop()
                    answer.update(await loop.run_in_executor(_claims(), _standin_fresh, poll))
                content = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
            if gone.done() and outcome is not None and outcome.jobs:
                # The worker hung up while the stand-in fields were read: an answer sent now would be
                # lost with its jobs (a stopping worker half-closes its poll, worker_client/cancel.py).
                await asyncio.get_running_loop().run_in_executor(_claims(), _release_unsent, poll,
                                                                 outcome.jobs)
                return
        except BACKEND_UNAVAILABLE as exc:
            # The database or Redis went away during the wait: 503 in the protocol's shape, as any
            # other request is answered then (docs/API.md, "Errors"), never the server's bare 500.
            await _unavailable(send, exc)
            return
        finally:
            gone.cancel()
        headers = [(name, value) for name, value in held["start"]["headers"]
                   if name.lower() != b"content-length"]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({**held["start"], "headers": headers})
        await send({"type": "http.response.body", "body": content})
