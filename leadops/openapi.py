"""OpenAPI post-processing: every operation documents the protocol's error shape and codes."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, stable; act on this"},
                "message": {"type": "string", "description": "for people; may change"},
                "fields": {
                    "$ref": "#/components/schemas/FieldErrors",
                    "description": "422 only: what is wrong with which field (e.g. `leads[3].phone`)",
                },
            },
        }
    },
}

# A field's problems, or for a nested object (a report's `error`) or a list (enqueue's `payloads`) a map
# of its fields or item indexes, to any depth: what DRF's validation reports.
FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {"$ref": "#/components/schemas/FieldErrors"},
        ]
    },
}

COMMON_ERRORS = {
    "400": "Malformed request: the body is not JSON (`malformed_json`), or a required header is "
           "missing (`idempotency_key_required`).",
    "401": "`unauthorized`: the signature, key, timestamp or nonce was not accepted (always generic).",
    "403": "`worker_disabled`, `attempt_not_owned`, or `forbidden` (staff endpoints).",
    "404": "`not_found`, `job_not_found`, `attempt_not_found`.",
    "409": "`attempt_superseded` (a newer attempt exists) or `job_finished`.",
    "413": "`payload_too_large`: the body is over LEADOPS_MAX_BODY_BYTES (checked before parsing).",
    "422": "`validation_error` with `fields`, or `idempotency_key_reused`.",
    "429": "`rate_limited`; wait the `Retry-After` seconds.",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["FieldErrors"] = FIELD_ERRORS_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status, description in COMMON_ERRORS.items():
                operation["responses"].setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": ref}}}
                )
    return result
