"""Worker endpoints of the fleet: heartbeat and config. Thin: parse, call a service, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils.timezone import now as clock_now
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ValidationFailed
from core.fields import SafeJSONObjectField, SafeJSONValueField, StrictCharField, StrictIntegerField
from workers_mgmt.auth import IsWorker, WorkerSignatureAuthentication
from workers_mgmt.models import Worker
from workers_mgmt.services import (
    EnrollmentRefused,
    credential_deliver,
    enrollment_exchange,
    worker_config_get,
    worker_config_recent,
    worker_heartbeat,
)

logger = logging.getLogger("leadops.auth")


class WorkerAPIView(APIView):
    """Base of every signed worker endpoint."""

    authentication_classes = [WorkerSignatureAuthentication]
    permission_classes = [IsWorker]

    @property
    def worker(self) -> Worker:
        return self.request.user  # type: ignore[return-value]

    def body(self, request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        data = request.data if request.body else {}
        if not isinstance(data, dict):
            raise ValidationFailed("The body must be a JSON object.",
                                   fields={"non_field_errors": ["Expected a JSON object."]})
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class HeartbeatIn(serializers.Serializer):
    version = StrictCharField(max_length=64)
    status = StrictCharField(max_length=32)
    running_jobs = StrictIntegerField(min_value=0, max_value=100_000)
    metrics = SafeJSONObjectField(required=False)
    self_test = SafeJSONValueField(required=False)


class PendingCredentialOut(serializers.Serializer):
    key_id = serializers.CharField()
    secret = serializers.CharField()


class CredentialsOut(serializers.Serializer):
    pending = PendingCredentialOut()


class UpdateTargetOut(serializers.Serializer):
    version = serializers.CharField(help_text="The release this worker should run now.")
    sequence = serializers.IntegerField(help_text="The signed manifest sequence of the worker's channel.")


class HeartbeatOut(serializers.Serializer):
    server_time = serializers.DateTimeField()
    poll_interval_s = serializers.IntegerField()
    config_version = serializers.IntegerField()
    update_target = UpdateTargetOut(allow_null=True, help_text=(
        "The release this worker should run now (pin, canary, rollout step, else the channel's), "
        "whatever it runs; null when none applies. When `version` differs from what the worker "
        "runs, it should ask GET /updates/check at once (docs/RELEASES.md)."))
    credentials = CredentialsOut(required=False, help_text=(
        "Present only during a push rotation, and only to a request signed with the current key: "
        "sign the next requests with this key; the first one promotes it."))


def client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class HeartbeatView(WorkerAPIView):
    @extend_schema(request=HeartbeatIn, responses={200: HeartbeatOut}, operation_id="heartbeat",
                   summary="Report liveness; learn the poll interval, config version and update target.")
    def post(self, request: Request) -> Response:
        data = self.body(request, HeartbeatIn)
        worker_heartbeat(
            worker=self.worker, version=data["version"], status=data["status"],
            running_jobs=data["running_jobs"], metrics=data.get("metrics"), ip=client_ip(request),
            self_test=data.get("self_test"),
        )
        # A copy at most WORKER_CONFIG_MAX_AGE_S old: a changed version reaches the fleet that much later.
        config = worker_config_recent()
        answer = {
            "server_time": clock_now().isoformat(),
            "poll_interval_s": config.poll_interval_s,
            "config_version": config.version,
            "update_target": update_target_for(self.worker.pk),
        }
        # Push rotation: the one place a secret ever leaves the server in an API answer.
        pending = credential_deliver(credential=request.auth, ip=client_ip(request))  # type: ignore[arg-type]
        if pending is not None:
            answer["credentials"] = {"pending": {"key_id": pending.key_id, "secret": pending.secret}}
        return Response(answer, headers={"Cache-Control": "no-store"} if pending else None)


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


class ConfigView(WorkerAPIView):
    @extend_schema(responses={200: ConfigOut}, operation_id="config", summary="The worker's configuration.")
    def get(self, request: Request) -> Response:
        from django.conf import settings

        config = worker_config_get()
        return Response({
            "config_version": config.version,
            "poll_interval_s": config.poll_interval_s,
            "long_poll_wait_s": config.long_poll_wait_s,
            "heartbeat_interval_s": config.heartbeat_interval_s,
            "update_check_interval_s": config.update_check_interval_s,
            "max_batch": min(config.max_batch, settings.LEADOPS_MAX_PULL),
            "report_chunk_leads": min(config.report_chunk_leads, config.max_leads_per_report,
                                      settings.LEADOPS_MAX_LEADS_PER_REPORT),
            # Tuned in admin, never above the server's hard limits.
            "max_body_bytes": min(config.max_body_bytes, settings.LEADOPS_MAX_BODY_BYTES),
            "max_leads_per_report": min(config.max_leads_per_report, settings.LEADOPS_MAX_LEADS_PER_REPORT),
            "enabled_providers": enabled_provider_names(),
            "channel": self.worker.channel,
            "rate_limit_per_min": self.worker.rate_limit_per_min,
            "extra": config.extra,
        })


def enabled_provider_names() -> list[str]:
    """The providers a worker may be asked to scrape.

    The fleet app does not own providers; the queue registers this lookup at start-up so the
    dependency arrow stays queueing -> workers_mgmt (docs/SYSTEM_OVERVIEW.md, "Layers").
    """
    return list(_provider_lookup()) if _provider_lookup else []


_provider_lookup = None


def register_provider_lookup(lookup) -> None:
    global _provider_lookup
    _provider_lookup = lookup


def update_target_for(worker_id: str) -> dict[str, Any] | None:
    """What the heartbeat answers as `update_target`: `{version, sequence}` or None.

    Releases own channels, rollouts and pins; they register this lookup at start-up so the
    dependency arrow stays releases_app -> workers_mgmt (docs/SYSTEM_OVERVIEW.md, "Layers"). The
    lookup reads the database on every call (one statement), so it is never staler than the
    heartbeat itself.
    """
    return _update_target_lookup(worker_id) if _update_target_lookup else None


_update_target_lookup: Callable[[str], dict[str, Any] | None] | None = None


def register_update_target_lookup(lookup: Callable[[str], dict[str, Any] | None]) -> None:
    global _update_target_lookup
    _update_target_lookup = lookup


class EnrollIn(serializers.Serializer):
    token = StrictCharField(max_length=200)


class EnrollOut(serializers.Serializer):
    worker_id = serializers.CharField()
    key_id = serializers.CharField()
    secret = serializers.CharField()


class EnrollView(APIView):
    """POST /enroll: unsigned; a one-time enrollment token buys the worker its first key."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(request=EnrollIn, responses={200: EnrollOut}, operation_id="enroll", auth=[],
                   summary="Exchange a one-time enrollment token for the worker's id, key id and secret.")
    def post(self, request: Request) -> Response:
        from core.errors import RateLimited, Unauthorized
        from workers_mgmt.auth import auth_failure_count, auth_failures_blocked, enroll_failure_key

        ip = client_ip(request)
        # Its own per-IP budget: a token guesser is slowed, and a fleet's enrollments from one NAT
        # never spend the budget its signed requests rely on (or the other way round).
        keys = [enroll_failure_key(ip=ip)]
        blocked = auth_failures_blocked(keys)
        if not blocked.allowed:
            raise RateLimited(blocked.retry_after_s)
        data = request.data if request.body else {}
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token or len(token) > 200:
            auth_failure_count(keys)
            raise Unauthorized()
        try:
            issued = enrollment_exchange(token=token, ip=ip)
        except EnrollmentRefused:
            auth_failure_count(keys)
            logger.warning("enrollment refused: ip=%s", ip)
            raise Unauthorized() from None
        logger.info("worker %s enrolled with key %s", issued.worker_id, issued.key_id)
        return Response(issued.as_dict(), headers={"Cache-Control": "no-store"})
