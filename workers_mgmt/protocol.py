"""The fleet's side of the worker protocol (docs/API.md): heartbeat and enrollment bodies, and answers.

Each `Shape` both parses its body and is its OpenAPI component (core/protocol.py), so the schema
and the checks cannot drift.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.protocol import Field, Integer, Invalid, JSONObject, JSONValue, Resolve, Shape, Text, body_parse

HEARTBEAT_IN = Shape("HeartbeatIn", {
    "version": Text(max_length=64),
    "status": Text(max_length=32),
    "running_jobs": Integer(min_value=0, max_value=100_000),
    "metrics": JSONObject(required=False),
    "self_test": JSONValue(required=False),
})


def heartbeat_parse(data: Any) -> dict[str, Any]:
    return body_parse(HEARTBEAT_IN, data)


class EnrollmentToken(Field):
    """A one-time enrollment token as sent: anything else is a failed authentication, never a 422."""

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not value or len(value) > 200:
            raise Invalid(["Not an enrollment token."])
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "string", "maxLength": 200}


ENROLL_IN = Shape("EnrollIn", {"token": EnrollmentToken()})


def enrollment_token(data: Any) -> str | None:
    """The token of `POST /enroll`'s body, or None when there is none to try."""
    try:
        return str(ENROLL_IN.parse(data)["token"])
    except Invalid:
        return None


# The answers, as documented (they are built by the views, never parsed).


class PendingCredentialOut(serializers.Serializer):
    key_id = serializers.CharField()
    secret = serializers.CharField()


class CredentialsOut(serializers.Serializer):
    pending = PendingCredentialOut()


class UpdateTargetOut(serializers.Serializer):
    version = serializers.CharField(help_text="The release this worker should run now.")
    sequence = serializers.IntegerField(help_text="The signed manifest sequence of the worker's channel.")


_UPDATE_TARGET_HELP = (
    "The release this worker should run now (pin, canary, rollout step, else the channel's), "
    "whatever it runs; null when none applies. When `version` differs from what the worker "
    "runs, it should ask GET /updates/check at once (docs/RELEASES.md).")
_CREDENTIALS_HELP = (
    "Present only during a push rotation, and only to a request signed with the current key: "
    "sign the next requests with this key; the first one promotes it. The answer then has "
    "Cache-Control: no-store.")


def heartbeat_answer(*, stands_in: bool) -> type[serializers.Serializer]:
    """The fields a heartbeat answers, for the heartbeat's own answer or (`stands_in`) for a pull or
    an exchange answer, which carries them only when it refreshed the worker's liveness
    (docs/API.md, "Liveness"): one definition, so the two answers cannot drift apart."""
    optional: dict[str, Any] = {"required": False} if stands_in else {}
    when = " Present when this answer stands in for a heartbeat." if stands_in else ""

    class HeartbeatAnswer(serializers.Serializer):
        config_version = serializers.IntegerField(**optional)
        update_target = UpdateTargetOut(allow_null=True, help_text=_UPDATE_TARGET_HELP + when, **optional)
        credentials = CredentialsOut(required=False, help_text=_CREDENTIALS_HELP)

    return HeartbeatAnswer


class HeartbeatOut(heartbeat_answer(stands_in=False)):  # type: ignore[misc]
    server_time = serializers.DateTimeField()
    poll_interval_s = serializers.IntegerField()


class ConfigOut(serializers.Serializer):
    config_version = serializers.IntegerField()
    poll_interval_s = serializers.IntegerField()
    long_poll_wait_s = serializers.IntegerField()
    heartbeat_interval_s = serializers.IntegerField()
    update_check_interval_s = serializers.IntegerField()
    max_batch = serializers.IntegerField()
    report_chunk_leads = serializers.IntegerField()
    max_body_bytes = serializers.IntegerField()
    max_leads_per_report = serializers.IntegerField()
    enabled_providers = serializers.ListField(child=serializers.CharField())
    channel = serializers.CharField()
    rate_limit_per_min = serializers.IntegerField()
    extra = serializers.DictField()


class EnrollOut(serializers.Serializer):
    worker_id = serializers.CharField()
    key_id = serializers.CharField()
    secret = serializers.CharField()
