"""The releases' side of the worker protocol (docs/API.md, "Worker releases"): bodies, ranges, answers.

Each `Shape` both parses its body and is its OpenAPI component (core/protocol.py), so the schema
and the checks cannot drift.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from core.errors import ProtocolError
from core.protocol import Boolean, Choice, JSONObject, Shape, Text, body_parse
from releases_app.models import UpdateStage

UPDATE_REPORT_IN = Shape("UpdateReportIn", {
    "version": Text(max_length=63),
    "stage": Choice(UpdateStage.values),
    "ok": Boolean(),
    "details": JSONObject(required=False),
})


def update_report_parse(data: Any) -> dict[str, Any]:
    return body_parse(UPDATE_REPORT_IN, data)


class RangeNotSatisfiable(ProtocolError, status=416, code="range_not_satisfiable"): ...


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def range_parse(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range; None to send the whole artifact."""
    match = _RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None  # several ranges or another unit: the whole body is a valid answer (RFC 9110)
    first_text, last_text = match.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
        if first >= size or (last_text and int(last_text) < first):
            raise RangeNotSatisfiable(f"The artifact has {size} bytes.",
                                      headers={"Content-Range": f"bytes */{size}"})
        return first, last
    suffix = int(last_text)
    if suffix == 0:
        raise RangeNotSatisfiable(f"The artifact has {size} bytes.",
                                  headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size - 1


# The answers, as documented (they are built by the views, never parsed).


class TargetOut(serializers.Serializer):
    version = serializers.CharField()
    url = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()


class SignatureOut(serializers.Serializer):
    keyid = serializers.CharField(help_text="First 16 hex digits of SHA-256 of the raw Ed25519 public key.")
    sig = serializers.CharField(help_text="Base64 Ed25519 signature over the canonical JSON of `signed`.")


class ManifestOut(serializers.Serializer):
    signed = serializers.DictField(help_text="schema, channel, sequence, issued_at, expires_at, release, "
                                             "previous, rollout, pinned (docs/RELEASES.md).")
    signatures = SignatureOut(many=True)


class UpdateCheckOut(serializers.Serializer):
    target = TargetOut(allow_null=True)
    reason = serializers.ChoiceField(choices=["pin", "canary", "cohort", "channel", "current"])
    manifest = ManifestOut(allow_null=True)


class EmptyOut(serializers.Serializer):
    pass
