"""SQL statements per request on the worker API, counted inside Django (CaptureQueriesContext).

Run by `bench.run` in a subprocess with the bench's production settings, against the bench
database: it signs requests like a worker and sends them through Django's test client, so what it
counts is exactly the server's request path (authentication, nonce, rate limit, claim, report,
ingestion), without HTTP or daphne in the way.
"""

from __future__ import annotations

import io
import json
import sys
import time
import uuid


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.leads import LeadStream
    from bench.miniclient import sign

    out = io.StringIO()
    call_command("create_worker", f"bench-q{uuid.uuid4().hex[:6]}", "--rate-limit", "1000000", "--json",
                 stdout=out)
    cred = json.loads(out.getvalue())
    call_command("enqueue_jobs", "--provider", "bench-queries", "--count", "200", stdout=io.StringIO())
    client = Client(HTTP_HOST="127.0.0.1")
    stream = LeadStream(650)

    def call(path: str, payload: dict, headers: dict | None = None):
        body = json.dumps(payload, ensure_ascii=False).encode()
        signed = sign(method="POST", path=path, query="", body=body, worker_id=cred["worker_id"],
                      key_id=cred["key_id"], secret=cred["secret"])
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in {**signed, **(headers or {})}.items()}
        with CaptureQueriesContext(connection) as ctx:
            start = time.perf_counter()
            response = client.post(path, data=body, content_type="application/json", **extra)
            elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.content[:500]!r}")
        return response.json(), ctx.captured_queries, elapsed

    result = {}

    def record(name: str, queries: list, elapsed: float) -> None:
        result[name] = {"queries": len(queries), "ms_in_process": round(elapsed, 2),
                        "sql": [q["sql"][:160] for q in queries]}

    # Warm up (first request loads URLconf, serializers, the credential cache...).
    answer, _, _ = call("/api/v1/jobs/pull", {"max": 1})
    job = answer["jobs"][0]
    call(f"/api/v1/jobs/{job['id']}/report", {"attempt_id": job["attempt_id"], "outcome": "succeeded",
                                               "leads": stream.leads(5)}, {"Idempotency-Key": str(uuid.uuid4())})

    for batch in (1, 10):
        answer, queries, elapsed = call("/api/v1/jobs/pull", {"max": batch})
        record(f"pull max={batch}", queries, elapsed)
        job = answer["jobs"][0]
        _, queries, elapsed = call(f"/api/v1/jobs/{job['id']}/report",
                                   {"attempt_id": job["attempt_id"], "outcome": "succeeded",
                                    "leads": stream.leads(5)}, {"Idempotency-Key": str(uuid.uuid4())})
        record(f"report 5 leads (after pull max={batch})", queries, elapsed)
    answer, _, _ = call("/api/v1/jobs/pull", {"max": 1})
    job = answer["jobs"][0]
    _, queries, elapsed = call(f"/api/v1/jobs/{job['id']}/report",
                               {"attempt_id": job["attempt_id"], "outcome": "succeeded",
                                "leads": stream.leads(500)}, {"Idempotency-Key": str(uuid.uuid4())})
    record("report 500 leads", queries, elapsed)

    _, queries, elapsed = call("/api/v1/heartbeat", {"version": "bench", "status": "ok", "running_jobs": 0})
    record("heartbeat (first)", queries, elapsed)
    _, queries, elapsed = call("/api/v1/heartbeat", {"version": "bench", "status": "ok", "running_jobs": 0})
    record("heartbeat", queries, elapsed)
    answer, queries, elapsed = call("/api/v1/jobs/pull", {"max": 10, "providers": ["bench-nothing"]})
    assert not answer["jobs"]
    record("pull, nothing ready", queries, elapsed)
    # Protocol v1.1: report N finished jobs (5 leads each) and pull 10 more, in one request.
    answer, _, _ = call("/api/v1/jobs/pull", {"max": 50})
    held = answer["jobs"]
    for items in (1, 10, 50):
        while len(held) < items:
            held += call("/api/v1/jobs/pull", {"max": 50})[0]["jobs"]
        reports = [{"job_id": job["id"], "idempotency_key": str(uuid.uuid4()), "attempt_id": job["attempt_id"],
                    "outcome": "succeeded", "leads": stream.leads(5)} for job in held[:items]]
        answer, queries, elapsed = call("/api/v1/jobs/exchange", {"reports": reports, "pull": {"max": 10}})
        held = held[items:] + answer["jobs"]
        record(f"exchange {items} reports x 5 leads + pull 10", queries, elapsed)
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
