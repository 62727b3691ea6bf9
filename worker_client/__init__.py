"""The LeadOps reference worker: plain Python (httpx), no Django and nothing of the project.

It speaks the worker wire protocol v1 of docs/API.md, with v1.1's `POST /jobs/exchange` by default
(a job's final report rides the next pull; v1 again when a server answers 404), and is what
`simulate_fleet`, the end-to-end tests and the benchmarks drive. Real fleet workers are written in
Node against the same contract; this package is the executable reference for it.
"""

from worker_client.client import LeadOpsClient
from worker_client.errors import (
    AttemptSuperseded,
    ClientError,
    JobFinished,
    ProtocolError,
    TransportFailure,
    Unauthorized,
)
from worker_client.signing import sign_request, string_to_sign

__all__ = [
    "AttemptSuperseded",
    "ClientError",
    "JobFinished",
    "LeadOpsClient",
    "ProtocolError",
    "TransportFailure",
    "Unauthorized",
    "sign_request",
    "string_to_sign",
]

__version__ = "0.1.0"
