"""OpenAPI description of the request signing, so generated clients know every header."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

SIGNING_DESCRIPTION = """\
Every worker request carries six headers (docs/API.md):

- `X-LeadOps-Worker`: the worker id
- `X-LeadOps-Key-Id`: the credential's key id
- `X-LeadOps-Timestamp`: unix seconds; refused when more than 300 s from the server clock
- `X-LeadOps-Nonce`: at least 16 random bytes, base64url; refused when seen from this worker in 10 min
- `X-LeadOps-Content-SHA256`: lowercase hex SHA-256 of the raw body (of "" for an empty body)
- `Authorization: LEADOPS-HMAC-SHA256 Signature=<lowercase hex HMAC-SHA256>`

The signed string is nine lines joined by `\\n` with no trailing newline: `LEADOPS-HMAC-SHA256`,
the method in upper case, the path exactly as sent, the raw query string exactly as sent (an empty
line when none), the worker id, the key id, the timestamp, the nonce, the content SHA-256. The HMAC
key is the UTF-8 bytes of the credential's secret.

Errors: 401 `unauthorized` (always generic; the reason is logged server-side), 403
`worker_disabled`, 413 `payload_too_large`, 429 `rate_limited` with `Retry-After`.
"""


class WorkerSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "workers_mgmt.auth.WorkerSignatureAuthentication"
    name = "LeadOpsSignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": SIGNING_DESCRIPTION,
        }
