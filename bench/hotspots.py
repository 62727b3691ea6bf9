"""Summarize py-spy raw stacks (`bench.run --profile DIR`) into the server's request path.

    .venv/bin/python -m bench.hotspots DIR/jobs-batch1-*.txt

Prints the share of the sampled server time (py-spy --gil: the thread holding the GIL, that is
Python CPU) spent under each stage of a worker request, then the hottest leaf functions.
A stage's share is inclusive: "auth" contains "auth: nonce store".
"""

from __future__ import annotations

import re
import sys
from collections import Counter

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("daphne / Twisted / asyncio (event-loop thread)", ("!SyncToAsync.thread_handler",)),
    ("Django handler + middleware (sync thread)", ("SyncToAsync.thread_handler",)),
    ("DRF APIView.dispatch", ("APIView.dispatch",)),
    ("auth: WorkerSignatureAuthentication", ("WorkerSignatureAuthentication.authenticate",)),
    ("auth: credential lookup (ORM)", ("WorkerSignatureAuthentication.authenticate", "QuerySet.first")),
    ("auth: nonce store", ("nonce_record",)),
    ("auth: rate limit (GCRA)", ("gcra_acquire",)),
    ("auth: credential_touch", ("credential_touch",)),
    ("auth: HMAC + body hash", ("compute_signature",)),
    ("request JSON parsing (request.data)", ("Request.data",)),
    ("serializer validation", ("Serializer.is_valid",)),
    ("pull: jobs_pull (guards + claim)", ("jobs_pull",)),
    ("report: job_report (all)", ("job_report",)),
    ("report: idempotency receipt lookups", ("_receipt_find",)),
    ("report: request hash", ("report_request_hash",)),
    ("report: lead parsing (parse_lead_rows)", ("parse_lead_rows",)),
    ("ingestion: lead_batch_ingest", ("lead_batch_ingest",)),
    ("response rendering", ("APIView.finalize_response",)),
    ("ORM: SQL compilation", ("SQLCompiler.as_sql",)),
    ("ORM: query building (filter/Q/clone)", ("QuerySet._filter_or_exclude",)),
    ("DB driver: psycopg execute/fetch", ("Cursor.execute",)),
    ("Redis client", ("Redis.execute_command",)),
    ("asgiref thread hand-off", ("SyncToAsync.__call__", "!SyncToAsync.thread_handler")),
]


def load(paths: list[str]) -> list[tuple[list[str], int]]:
    samples = []
    for path in paths:
        with open(path) as fh:
            for line in fh:
                line = line.rstrip()
                if not line:
                    continue
                stack, _, count = line.rpartition(" ")
                frames = [re.sub(r" \(.*", "", frame) for frame in stack.split(";")]
                samples.append((frames, int(count)))
    return samples


def _matches(frames: list[str], patterns: tuple[str, ...]) -> bool:
    joined = ";".join(frames)
    for pattern in patterns:
        if pattern.startswith("!"):
            if pattern[1:] in joined:
                return False
        elif pattern not in joined:
            return False
    return True


def summarize(paths: list[str]) -> dict[str, float]:
    samples = load(paths)
    total = sum(count for _, count in samples) or 1
    return {label: sum(c for frames, c in samples if _matches(frames, patterns)) / total
            for label, patterns in STAGES}


def main(paths: list[str]) -> None:
    samples = load(paths)
    total = sum(count for _, count in samples) or 1
    print(f"{total} samples")
    for label, share in summarize(paths).items():
        print(f"{share:6.1%}  {label}")
    leaves = Counter()
    for frames, count in samples:
        leaves[frames[-1]] += count
    print("hottest leaf functions:")
    for name, count in leaves.most_common(15):
        print(f"{count / total:6.1%}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
