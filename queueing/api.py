"""The queue's endpoints of the worker protocol (docs/API.md) and staff enqueue."""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import Actor
from core.errors import MalformedRequest, ValidationFailed
from core.fields import SafeJSONObjectField, StrictBooleanField, StrictCharField, StrictIntegerField
from core.models import StaffSource
from ingestion.schema import LeadValidationError, parse_lead_rows
from queueing import services
from queueing.models import Provider
from workers_mgmt.api import WorkerAPIView

_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")


class PullIn(serializers.Serializer):
    max = StrictIntegerField(min_value=1, max_value=50, required=False, default=1)
    providers = serializers.ListField(child=StrictCharField(max_length=63), required=False,
                                      allow_empty=True, max_length=100)
    wait_s = StrictIntegerField(min_value=0, max_value=60, required=False, default=0)


class ClaimOut(serializers.Serializer):
    id = serializers.IntegerField()
    attempt_id = serializers.UUIDField()
    attempt = serializers.IntegerField()
    provider = serializers.CharField()
    payload = serializers.JSONField()
    lease_expires_at = serializers.DateTimeField()


class PullOut(serializers.Serializer):
    jobs = ClaimOut(many=True)
    retry_after_s = serializers.IntegerField()


class PullView(WorkerAPIView):
    @extend_schema(request=PullIn, responses={200: PullOut}, operation_id="jobs_pull",
                   summary="Lease up to `max` ready jobs.")
    def post(self, request: Request) -> Response:
        data = self.body(request, PullIn)
        providers = data.get("providers") or None
        result = services.jobs_pull(worker=self.worker, max_jobs=data["max"], providers=providers)
        if not result.claims and data["wait_s"] and not result.worker_blocked:
            result = _long_poll(worker=self.worker, max_jobs=data["max"], providers=providers,
                                wait_s=data["wait_s"])
        claims = result.claims
        # An empty answer tells the worker when to come back; a full one, to come back at once.
        # A throttled worker (its breaker is open, or quotas/breakers hold back every ready job)
        # waits until the earliest moment that can change, never less than a second.
        retry_after_s = 0
        if not claims:
            retry_after_s = _poll_interval()
            if result.throttled_for_s is not None:
                wait = max(1, math.ceil(result.throttled_for_s))
                retry_after_s = wait if result.worker_blocked else min(retry_after_s, wait)
        return Response({"jobs": [claim.as_dict() for claim in claims], "retry_after_s": retry_after_s})


def _long_poll(*, worker: Any, max_jobs: int, providers: list[str] | None, wait_s: int
               ) -> services.PullResult:
    """Optional long poll: retry the claim about once a second, up to the configured wait.

    Each retry is its own short transaction, and the database connection goes back to the pool
    before every sleep: a pooled connection held by a sleeping request would let a few dozen
    waiting pollers starve the whole process (docs/PERFORMANCE.md, "Long polls and the pool").
    """
    from workers_mgmt.services import worker_config_get

    deadline = time.monotonic() + min(wait_s, worker_config_get().long_poll_wait_s)
    result = services.PullResult(claims=[])
    while (left := deadline - time.monotonic()) > 0:
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(min(1.0, left))
        result = services.jobs_pull(worker=worker, max_jobs=max_jobs, providers=providers)
        if result.claims or result.worker_blocked:
            break
    return result


def _max_leads_per_report() -> int:
    from workers_mgmt.services import worker_config_recent

    return min(worker_config_recent().max_leads_per_report, settings.LEADOPS_MAX_LEADS_PER_REPORT)


def _poll_interval() -> int:
    from workers_mgmt.services import worker_config_get

    return worker_config_get().poll_interval_s


class ExtendIn(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    seconds = StrictIntegerField(min_value=5, max_value=12 * 3600, required=False)


class ExtendOut(serializers.Serializer):
    lease_expires_at = serializers.DateTimeField()


class ExtendView(WorkerAPIView):
    @extend_schema(request=ExtendIn, responses={200: ExtendOut}, operation_id="jobs_extend",
                   summary="Extend the lease of a job.")
    def post(self, request: Request, job_id: int) -> Response:
        data = self.body(request, ExtendIn)
        expires = services.job_lease_extend(worker=self.worker, job_id=job_id,
                                            attempt_id=data["attempt_id"], seconds=data.get("seconds"))
        return Response({"lease_expires_at": expires.isoformat()})


class ReleaseIn(serializers.Serializer):
    attempt_ids = serializers.ListField(child=serializers.UUIDField(), required=False, max_length=1000)


class ReleaseOut(serializers.Serializer):
    released = serializers.IntegerField()


class ReleaseView(WorkerAPIView):
    @extend_schema(request=ReleaseIn, responses={200: ReleaseOut}, operation_id="jobs_release",
                   summary="Give back this worker's leases (all when attempt_ids is absent).")
    def post(self, request: Request) -> Response:
        data = self.body(request, ReleaseIn)
        released = services.jobs_release(worker=self.worker, attempt_ids=data.get("attempt_ids"))
        return Response({"released": released})


class ReportErrorIn(serializers.Serializer):
    code = StrictCharField(max_length=64)
    message = StrictCharField(max_length=2000, allow_blank=True)
    retryable = StrictBooleanField(required=False, default=True)


class ReportIn(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=services.ReportOutcome.values)
    leads = serializers.ListField(child=serializers.DictField(), required=False)
    error = ReportErrorIn(required=False, allow_null=True)


class ReportOut(serializers.Serializer):
    job_state = serializers.CharField()
    added = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    invalid = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField(required=False)


class ReportView(WorkerAPIView):
    @extend_schema(
        request=ReportIn, responses={200: ReportOut}, operation_id="jobs_report",
        summary="Report leads and the outcome of an attempt (idempotent by Idempotency-Key).",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
    )
    def post(self, request: Request, job_id: int) -> Response:
        key = request.META.get("HTTP_IDEMPOTENCY_KEY", "")
        if not _IDEMPOTENCY_KEY_RE.match(key):
            raise MalformedRequest("Send an Idempotency-Key header of 1-200 printable ASCII characters.",
                                   code="idempotency_key_required")
        raw = request.data if request.body else None
        if not isinstance(raw, dict):
            raise ValidationFailed("The body must be a JSON object.",
                                   fields={"non_field_errors": ["Expected a JSON object."]})
        # The leads are validated by ingestion's fast parser, not by a serializer per lead.
        raw_leads = raw.get("leads", [])
        top = {name: value for name, value in raw.items() if name != "leads"}
        serializer = ReportIn(data=top)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        try:
            leads = parse_lead_rows(raw_leads, max_leads=_max_leads_per_report())
        except LeadValidationError as exc:
            raise ValidationFailed("Some leads are not valid.", fields=exc.fields) from None
        error = dict(data["error"]) if data.get("error") else None
        result = services.job_report(
            worker=self.worker, job_id=job_id, attempt_id=data["attempt_id"], outcome=data["outcome"],
            leads=leads, error=error, idempotency_key=key,
            request_hash=services.report_request_hash(job_id=job_id, body=raw),
        )
        return Response(result.body, status=result.status)


class EvidenceOut(serializers.Serializer):
    evidence_id = serializers.UUIDField()


class EvidenceView(WorkerAPIView):
    """One screenshot per request, the raw image as the body (docs/API.md, "Evidence")."""

    @extend_schema(
        request={"image/png": {"type": "string", "format": "binary"},
                 "image/jpeg": {"type": "string", "format": "binary"}},
        responses={200: EvidenceOut}, operation_id="jobs_evidence",
        summary="Upload a screenshot (PNG or JPEG) of the worker's latest attempt on a job.",
        parameters=[OpenApiParameter("X-LeadOps-Attempt-Id", str, OpenApiParameter.HEADER, required=True,
                                     description="The attempt the screenshot belongs to.")],
    )
    def post(self, request: Request, job_id: int) -> Response:
        try:
            attempt_id = uuid.UUID(request.META.get("HTTP_X_LEADOPS_ATTEMPT_ID", ""))
        except ValueError:
            raise MalformedRequest("Send the attempt's id in the X-LeadOps-Attempt-Id header.") from None
        # The body is never parsed (the JSON parser would refuse it); the signature already covers
        # these exact bytes.
        content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        evidence = services.evidence_upload(worker=self.worker, job_id=job_id, attempt_id=attempt_id,
                                            content_type=content_type, body=request.body)
        return Response({"evidence_id": str(evidence.pk)})


class EnqueueIn(serializers.Serializer):
    provider = StrictCharField(max_length=63)
    payloads = serializers.ListField(child=SafeJSONObjectField(), min_length=1, max_length=10_000,
                                     required=False)
    count = StrictIntegerField(min_value=1, max_value=100_000, required=False)
    payload = SafeJSONObjectField(required=False)
    priority = StrictIntegerField(min_value=-32768, max_value=32767, required=False, default=0)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "payloads" not in attrs and "count" not in attrs:
            raise serializers.ValidationError("Give `payloads` or `count` (with an optional `payload`).")
        return attrs


class EnqueueOut(serializers.Serializer):
    created = serializers.IntegerField()
    job_ids = serializers.ListField(child=serializers.IntegerField(), help_text="The first 1,000 ids.")


class EnqueueView(APIView):
    """Staff only (session or token): create jobs for a provider."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=EnqueueIn, responses={201: EnqueueOut}, operation_id="jobs_enqueue",
                   summary="Enqueue jobs (staff).")
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationFailed("The body must be a JSON object.")
        serializer = EnqueueIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        provider = Provider.objects.filter(name=data["provider"]).first()
        if provider is None:
            try:
                provider = services.provider_get_or_create(name=data["provider"])
            except DjangoValidationError as exc:
                raise ValidationFailed("Not a valid provider name.",
                                       fields={"provider": [str(exc)]}) from None
        payloads = data.get("payloads") or [data.get("payload", {})] * data["count"]
        jobs = services.jobs_enqueue(provider=provider, payloads=payloads, priority=data["priority"],
                                     actor=Actor.from_user(request.user, source=StaffSource.API))
        return Response({"created": len(jobs), "job_ids": [job.pk for job in jobs[:1000]]}, status=201)
