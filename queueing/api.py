"""The queue's endpoints of the worker protocol (docs/API.md) and staff enqueue: parse, call, answer."""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.audit import Actor
from core.errors import ValidationFailed
from core.models import StaffSource
from queueing import protocol, services
from queueing.long_poll import LongPoll, long_poll_allowed, long_poll_defer
from queueing.models import Provider
from workers_mgmt.api import WorkerAPIView, no_store_if_secret


class PullView(WorkerAPIView):
    @extend_schema(request=protocol.PULL_IN, responses={200: protocol.PullOut}, operation_id="jobs_pull",
                   summary="Lease up to `max` ready jobs.")
    def post(self, request: Request) -> Response:
        data = protocol.pull_parse(self.data(request))
        providers = data.get("providers") or None
        result = services.jobs_pull(worker=self.worker, max_jobs=data["max"], providers=providers)
        answer = {**_pull_answer(result), **self.standin_fields(request)}
        wait_s = _wait_allowed(data["wait_s"]) if not (result.claims or result.worker_blocked) else 0
        if wait_s and long_poll_allowed(request._request):
            # The wait happens in the event loop, after this view and its thread are done
            # (queueing/long_poll.py); this answer goes out if the wait ends empty.
            long_poll_defer(request._request, LongPoll(
                worker_id=self.worker.pk, key_id=request.auth.key_id,  # type: ignore[union-attr]
                max_jobs=data["max"], providers=providers, deadline=time.monotonic() + wait_s,
                stands_in=self.stands_in))
            answer["retry_after_s"] = 0
        elif wait_s:
            result = _long_poll(worker=self.worker, max_jobs=data["max"], providers=providers, wait_s=wait_s)
            answer.update(_pull_answer(result))
            if not result.claims and not result.worker_blocked:
                answer["retry_after_s"] = 0
        return Response(answer, headers=no_store_if_secret(answer))


def _wait_allowed(wait_s: int) -> int:
    """How long this pull may wait: what it asks, within the fleet's `long_poll_wait_s`."""
    if not wait_s:
        return 0
    from workers_mgmt.services import worker_config_recent

    return min(wait_s, worker_config_recent().long_poll_wait_s)


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
    """The long poll under a WSGI server (no event loop): retry the claim about once a second.

    Each retry is its own short transaction, and the database connection goes back to the pool
    before every sleep: a pooled connection held by a sleeping request would let a few dozen
    waiting pollers starve the whole process (docs/PERFORMANCE.md, "Long polls and the pool").
    Under ASGI the wait holds no thread at all (queueing/long_poll.py).
    """
    deadline = time.monotonic() + wait_s
    result = services.PullResult(claims=[])
    while (left := deadline - time.monotonic()) > 0:
        if not connection.in_atomic_block:
            connection.close()
        time.sleep(min(1.0, left))
        result = services.jobs_pull(worker=worker, max_jobs=max_jobs, providers=providers)
        if result.claims or result.worker_blocked:
            break
    return result


def _poll_interval() -> int:
    from workers_mgmt.services import worker_config_recent

    return worker_config_recent().poll_interval_s


class ExtendView(WorkerAPIView):
    @extend_schema(request=protocol.EXTEND_IN, responses={200: protocol.ExtendOut},
                   operation_id="jobs_extend",
                   summary="Extend the lease of a job.")
    def post(self, request: Request, job_id: int) -> Response:
        data = protocol.extend_parse(self.data(request))
        expires = services.job_lease_extend(worker=self.worker, job_id=job_id,
                                            attempt_id=data["attempt_id"], seconds=data.get("seconds"))
        return Response({"lease_expires_at": expires.isoformat()})


class ReleaseView(WorkerAPIView):
    @extend_schema(request=protocol.RELEASE_IN, responses={200: protocol.ReleaseOut},
                   operation_id="jobs_release",
                   summary="Give back this worker's leases (all when attempt_ids is absent).")
    def post(self, request: Request) -> Response:
        data = protocol.release_parse(self.data(request))
        released = services.jobs_release(worker=self.worker, attempt_ids=data.get("attempt_ids"))
        return Response({"released": released})


class ReportView(WorkerAPIView):
    @extend_schema(
        request=protocol.REPORT_IN, responses={200: protocol.ReportOut}, operation_id="jobs_report",
        summary="Report leads and the outcome of an attempt (idempotent by Idempotency-Key).",
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
    )
    def post(self, request: Request, job_id: int) -> Response:
        call = protocol.report_parse(job_id=job_id, key=request.META.get("HTTP_IDEMPOTENCY_KEY", ""),
                                     raw=request.data if request.body else None)
        result = services.job_report(
            worker=self.worker, job_id=call.job_id, attempt_id=call.attempt_id, outcome=call.outcome,
            leads=call.leads, error=call.error, idempotency_key=call.idempotency_key,
            request_hash=call.request_hash, log_tail=call.log_tail,
        )
        return Response(result.body, status=result.status)


class ExchangeView(WorkerAPIView):
    """Protocol v1.1: report finished work and take new work in one signed round trip."""

    @extend_schema(request=protocol.EXCHANGE_IN, responses={200: protocol.ExchangeOut},
                   operation_id="jobs_exchange",
                   summary="Report many attempts (each as its own report) and then pull new jobs.")
    def post(self, request: Request) -> Response:
        exchange = protocol.exchange_parse(request.data if request.body else {})
        results = []
        if exchange.items:
            results = services.reports_exchange(worker=self.worker, items=exchange.items)
        answer: dict[str, Any] = {"jobs": [], "retry_after_s": 0}
        pull = exchange.pull
        if pull is not None and pull["max"] > 0:
            claimed = services.jobs_pull(worker=self.worker, max_jobs=pull["max"],
                                         providers=pull.get("providers") or None)
            answer = _pull_answer(claimed)
        answer = {
            "results": [{"job_id": item.get("job_id") if isinstance(item, dict) else None,
                         "status": result.status, "body": result.body}
                        for item, result in zip(exchange.reports, results, strict=True)],
            **answer, **self.standin_fields(request),
        }
        return Response(answer, headers=no_store_if_secret(answer))


class EvidenceView(WorkerAPIView):
    """One screenshot per request, the raw image as the body (docs/API.md, "Evidence")."""

    @extend_schema(
        request={"image/png": {"type": "string", "format": "binary"},
                 "image/jpeg": {"type": "string", "format": "binary"}},
        responses={200: protocol.EvidenceOut}, operation_id="jobs_evidence",
        summary="Upload a screenshot (PNG or JPEG) of the worker's latest attempt on a job.",
        parameters=[OpenApiParameter("X-LeadOps-Attempt-Id", str, OpenApiParameter.HEADER, required=True,
                                     description="The attempt the screenshot belongs to.")],
    )
    def post(self, request: Request, job_id: int) -> Response:
        attempt_id = protocol.attempt_id_header(request.META.get("HTTP_X_LEADOPS_ATTEMPT_ID", ""))
        # The body is never parsed (the JSON parser would refuse it); the signature already covers
        # these exact bytes.
        evidence = services.evidence_upload(worker=self.worker, job_id=job_id, attempt_id=attempt_id,
                                            content_type=protocol.media_type(request.content_type),
                                            body=request.body)
        return Response({"evidence_id": str(evidence.pk)})


class EnqueueView(APIView):
    """Staff only (session or token): create jobs for a provider."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=protocol.ENQUEUE_IN, responses={201: protocol.EnqueueOut},
                   operation_id="jobs_enqueue",
                   summary="Enqueue jobs (staff).")
    def post(self, request: Request) -> Response:
        data = protocol.enqueue_parse(request.data)
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
