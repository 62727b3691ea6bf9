"""Worker endpoints of the fleet: heartbeat and config. Thin: parse, call a service, answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leadops.clock import now as clock_now
from leadops.errors import ValidationFailed
from leadops.fields import SafeJSONObjectField, SafeJSONValueField, StrictCharField, StrictIntegerField
from workers_mgmt.auth import IsWorker, WorkerSignatureAuthentication
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_config_get, worker_heartbeat


class WorkerAPIView(APIView):
    """Base of every signed worker endpoint."""

    authentication_classes = [WorkerSignatureAuthentication]
    permission_classes = [IsWorker]

    @property
    def worker(self) -> Worker:
        return self.request.user

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


class HeartbeatOut(serializers.Serializer):
    server_time = serializers.DateTimeField()
    poll_interval_s = serializers.IntegerField()
    config_version = serializers.IntegerField()


def client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


class HeartbeatView(WorkerAPIView):
    @extend_schema(request=HeartbeatIn, responses={200: HeartbeatOut}, operation_id="heartbeat",
                   summary="Report liveness; learn the poll interval and config version.")
    def post(self, request: Request) -> Response:
        data = self.body(request, HeartbeatIn)
        worker_heartbeat(
            worker=self.worker, version=data["version"], status=data["status"],
            running_jobs=data["running_jobs"], metrics=data.get("metrics"), ip=client_ip(request),
        )
        config = worker_config_get()
        return Response({
            "server_time": clock_now().isoformat(),
            "poll_interval_s": config.poll_interval_s,
            "config_version": config.version,
        })


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
    dependency arrow stays queueing -> workers_mgmt (DESIGN.md section 2).
    """
    return list(_provider_lookup()) if _provider_lookup else []


_provider_lookup = None


def register_provider_lookup(lookup) -> None:
    global _provider_lookup
    _provider_lookup = lookup
