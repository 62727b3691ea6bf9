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
from core.errors import MalformedRequest, ValidationFailed, exception_handler
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
        return Response(_pull_answer(result))


def _pull_answer(result: services.PullResult) -> dict[str, Any]:
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
    return {"jobs": [claim.as_dict() for claim in claims], "retry_after_s": retry_after_s}


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
    from workers_mgmt.services import worker_config_recent

    return worker_config_recent().poll_interval_s


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


class LogTailField(StrictCharField):
    """The last lines of the worker's log for the attempt: text of at most 16 KiB (UTF-8)."""

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        if len(text.encode("utf-8", "surrogatepass")) > services.MAX_LOG_TAIL_BYTES:
            raise serializers.ValidationError(f"At most {services.MAX_LOG_TAIL_BYTES} bytes of text (UTF-8).")
        return text


class ReportIn(serializers.Serializer):
    attempt_id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=services.ReportOutcome.values)
    leads = serializers.ListField(child=serializers.DictField(), required=False)
    error = ReportErrorIn(required=False, allow_null=True)
    log_tail = LogTailField(required=False, allow_blank=True, trim_whitespace=False,
                            help_text="The last lines of the worker's own log for this attempt (at most "
                                      "16 KiB); stored with phones and e-mail addresses masked.")


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
        call = _report_call(job_id=job_id, key=request.META.get("HTTP_IDEMPOTENCY_KEY", ""),
                            raw=request.data if request.body else None)
        result = services.job_report(
            worker=self.worker, job_id=call.job_id, attempt_id=call.attempt_id, outcome=call.outcome,
            leads=call.leads, error=call.error, idempotency_key=call.idempotency_key,
            request_hash=call.request_hash, log_tail=call.log_tail,
        )
        return Response(result.body, status=result.status)


def _report_call(*, job_id: int, key: Any, raw: Any) -> services.ReportCall:
    """Check one report request (v1, or one exchange item) and parse it; raises its error answer."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY_RE.match(key):
        raise MalformedRequest("Send an Idempotency-Key header of 1-200 printable ASCII characters.",
                               code="idempotency_key_required")
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
    return services.ReportCall(
        job_id=job_id, attempt_id=data["attempt_id"], outcome=data["outcome"], leads=leads,
        error=dict(data["error"]) if data.get("error") else None, idempotency_key=key,
        request_hash=services.report_request_hash(job_id=job_id, body=raw), log_tail=data.get("log_tail"),
    )


class ExchangePullIn(serializers.Serializer):
    max = StrictIntegerField(min_value=0, max_value=50, required=False, default=1)
    providers = serializers.ListField(child=StrictCharField(max_length=63), required=False,
                                      allow_empty=True, max_length=100)


class ExchangeReportIn(ReportIn):
    job_id = serializers.IntegerField()
    idempotency_key = StrictCharField(max_length=200)


class ExchangeIn(serializers.Serializer):
    reports = ExchangeReportIn(many=True, required=False)
    pull = ExchangePullIn(required=False)


class ExchangeResultOut(serializers.Serializer):
    job_id = serializers.JSONField(help_text="The item's job_id as sent.")
    status = serializers.IntegerField(help_text="The HTTP status POST /jobs/{job_id}/report would answer.")
    body = serializers.JSONField(help_text="That call's answer: the report answer or its error object.")


class ExchangeOut(PullOut):
    """A pull's answer, with the result of each report."""

    results = ExchangeResultOut(many=True)


class ExchangeView(WorkerAPIView):
    """Protocol v1.1: report finished work and take new work in one signed round trip."""

    @extend_schema(request=ExchangeIn, responses={200: ExchangeOut}, operation_id="jobs_exchange",
                   summary="Report many attempts (each as its own report) and then pull new jobs.")
    def post(self, request: Request) -> Response:
        raw = request.data if request.body else {}
        if not isinstance(raw, dict):
            raise ValidationFailed("The body must be a JSON object.",
                                   fields={"non_field_errors": ["Expected a JSON object."]})
        reports = raw.get("reports", [])
        if not isinstance(reports, list):
            raise ValidationFailed("`reports` must be a list.", fields={"reports": ["Expected a list."]})
        _exchange_limits_check(reports)
        pull_raw = raw.get("pull")
        pull: dict[str, Any] | None = None
        if pull_raw is not None:
            serializer = ExchangePullIn(data=pull_raw)
            if not serializer.is_valid():
                raise ValidationFailed("The request is not valid.", fields={"pull": serializer.errors})
            pull = serializer.validated_data
        items: list[services.ReportCall | services.ReportResult] = [_exchange_item(item) for item in reports]
        results = services.reports_exchange(worker=self.worker, items=items) if items else []
        answer: dict[str, Any] = {"jobs": [], "retry_after_s": 0}
        if pull is not None and pull["max"] > 0:
            claimed = services.jobs_pull(worker=self.worker, max_jobs=pull["max"],
                                         providers=pull.get("providers") or None)
            answer = _pull_answer(claimed)
        return Response({
            "results": [{"job_id": item.get("job_id") if isinstance(item, dict) else None,
                         "status": result.status, "body": result.body}
                        for item, result in zip(reports, results, strict=True)],
            **answer,
        })


def _exchange_limits_check(reports: list[Any]) -> None:
    """The whole-request limits (docs/API.md, "Exchange"): over either, nothing is done."""
    most_reports = settings.LEADOPS_MAX_EXCHANGE_REPORTS
    if len(reports) > most_reports:
        raise ValidationFailed(f"At most {most_reports} reports per exchange.",
                               fields={"reports": [f"At most {most_reports} items."]})
    most_leads = settings.LEADOPS_MAX_LEADS_PER_EXCHANGE
    total = sum(len(item["leads"]) for item in reports
                if isinstance(item, dict) and isinstance(item.get("leads"), list))
    if total > most_leads:
        raise ValidationFailed(f"At most {most_leads} leads per exchange in all.",
                               fields={"reports": [f"{total} leads; at most {most_leads}."]})


def _exchange_item(item: Any) -> services.ReportCall | services.ReportResult:
    """Parse one item as its own v1 report would be; a failure becomes that item's answer."""
    if not isinstance(item, dict):
        return _item_error(ValidationFailed("Each report must be a JSON object.",
                                            fields={"non_field_errors": ["Expected a JSON object."]}))
    job_id = item.get("job_id")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
        # No such URL for the v1 call: the item is answered as a job that does not exist.
        return _item_error(services.JobNotFound())
    body = {name: value for name, value in item.items() if name not in ("job_id", "idempotency_key")}
    try:
        return _report_call(job_id=job_id, key=item.get("idempotency_key"), raw=body)
    except Exception as exc:  # mapped exactly as the v1 endpoint's handler maps it
        return _item_error(exc)


def _item_error(exc: Exception) -> services.ReportResult:
    response = exception_handler(exc, {})
    # A backing service outage is not this item's answer: the whole exchange answers 503 and the
    # worker sends it again (same keys), rather than giving up on one report.
    if response is None or response.status_code == 503:
        raise exc
    return services.ReportResult(status=response.status_code, body=response.data)


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
