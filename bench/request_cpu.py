"""Server CPU per signed request, in process: the child of `bench.credential_check`.

It signs requests like a worker and sends them through Django's test client (no HTTP server, so the
number is the application's own request path) and prints, as JSON, the median CPU time
(`time.process_time`, this process only) per request of each kind. It uses nothing but the worker
API and two management commands, so the same file measures a checkout from before a change
(`PYTHONPATH=<that checkout>`) and this one, side by side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import statistics
import sys
import time
import uuid


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    out = io.StringIO()
    call_command("create_worker", f"cpu-{uuid.uuid4().hex[:6]}", "--rate-limit", "100000000", "--json", stdout=out)
    cred = json.loads(out.getvalue())
    provider = f"cpu-{uuid.uuid4().hex[:6]}"
    call_command("enqueue_jobs", "--provider", provider, "--count", str(reps * 12 + 100), stdout=io.StringIO())
    client = Client(HTTP_HOST="127.0.0.1")

    def send(method: str, path: str, payload: dict | None = None, headers: dict | None = None):
        body = b"" if payload is None else json.dumps(payload).encode()
        timestamp = str(int(time.time()))
        nonce = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        digest = hashlib.sha256(body).hexdigest()
        canonical = "\n".join(["LEADOPS-HMAC-SHA256", method, path, "", cred["worker_id"], cred["key_id"],
                               timestamp, nonce, digest])
        signature = hmac.new(cred["secret"].encode(), canonical.encode(), hashlib.sha256).hexdigest()
        signed = {"X-LeadOps-Worker": cred["worker_id"], "X-LeadOps-Key-Id": cred["key_id"],
                  "X-LeadOps-Timestamp": timestamp, "X-LeadOps-Nonce": nonce, "X-LeadOps-Content-SHA256": digest,
                  "Authorization": f"LEADOPS-HMAC-SHA256 Signature={signature}", **(headers or {})}
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed.items()}
        response = client.generic(method, path, data=body, content_type="application/json", **extra)
        if response.status_code != 200:
            raise SystemExit(f"{method} {path} answered {response.status_code}: {response.content[:300]!r}")
        return response.json()

    def leads(n: int) -> list[dict]:
        return [{"name": f"Shop {uuid.uuid4().hex[:8]}", "phone": f"055{int.from_bytes(os.urandom(4), 'big') % 10**7:07d}"}
                for _ in range(n)]

    def timed(fn) -> float:
        start = time.process_time()
        fn()
        return (time.process_time() - start) * 1000

    heartbeat = {"version": "bench", "status": "ok", "running_jobs": 0}
    # Warm up: URLconf, serializers, the credential copy, the connection.
    for _ in range(20):
        send("GET", "/api/v1/config")
        send("POST", "/api/v1/heartbeat", heartbeat)

    samples: dict[str, list[float]] = {"config": [], "heartbeat": [], "v1 pull 1 + report 5 leads (per job)": [],
                                       "exchange 10 reports + pull 10 (per job)": []}
    held = send("POST", "/api/v1/jobs/pull", {"max": 10, "providers": [provider]})["jobs"]
    for _ in range(reps):
        samples["config"].append(timed(lambda: send("GET", "/api/v1/config")))
        samples["heartbeat"].append(timed(lambda: send("POST", "/api/v1/heartbeat", heartbeat)))

        five = leads(5)

        def v1(five: list[dict] = five) -> None:
            (job,) = send("POST", "/api/v1/jobs/pull", {"max": 1, "providers": [provider]})["jobs"]
            send("POST", f"/api/v1/jobs/{job['id']}/report",
                 {"attempt_id": job["attempt_id"], "outcome": "succeeded", "leads": five},
                 {"Idempotency-Key": str(uuid.uuid4())})

        samples["v1 pull 1 + report 5 leads (per job)"].append(timed(v1))

        reports = [{"job_id": job["id"], "idempotency_key": str(uuid.uuid4()), "attempt_id": job["attempt_id"],
                    "outcome": "succeeded", "leads": leads(5)} for job in held]

        def exchange(reports: list[dict] = reports) -> None:
            nonlocal held
            answer = send("POST", "/api/v1/jobs/exchange", {"reports": reports, "pull": {"max": 10, "providers": [provider]}})
            held = answer["jobs"]

        samples["exchange 10 reports + pull 10 (per job)"].append(timed(exchange) / 10)
    json.dump({name: statistics.median(values) for name, values in samples.items()}, sys.stdout)


if __name__ == "__main__":
    main()
