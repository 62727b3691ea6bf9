"""A long poll whose wait meets a database outage answers 503 in the protocol's shape, never a 500.

The chaos run found it (terminated database connections while polls waited): the woken claim ran
outside Django's handler, so its OperationalError reached the server as a bare 500. The outage is
injected at the claim, the one place the real one struck.
"""

from __future__ import annotations

import asyncio
import json
import time

from django.db import OperationalError

from queueing import long_poll


def test_a_database_outage_during_a_long_poll_answers_503(monkeypatch):
    async def claim_fails(poll, receive, gone=None):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(long_poll, "_wait", claim_fails)

    async def django(scope, receive, send):
        # What PullView does when it may wait: it leaves the poll in the scope and answers "nothing".
        scope[long_poll.SCOPE_WAIT] = long_poll.LongPoll(worker_id="w", key_id="k", max_jobs=1, providers=None,
                                                          deadline=time.monotonic() + 30)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"jobs": [], "retry_after_s": 0}'})

    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": long_poll.PULL_PATH, "headers": []}
    asyncio.run(long_poll.LongPollMiddleware(django)(scope, receive, send))

    start, body = sent
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == b"2"
    assert json.loads(body["body"])["error"]["code"] == "service_unavailable"
