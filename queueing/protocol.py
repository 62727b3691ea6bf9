"""The queue's side of the worker protocol (docs/API.md): every request body parsed and checked here.

Each `Shape` both parses its body and is its OpenAPI component (core/protocol.py), so the schema
and the checks cannot drift. The answers' shapes (`...Out`) are documented here too. Views call
these parsers, then one service.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.errors import MalformedRequest, ValidationFailed, exception_handler
from core.protocol import (
    NOT_AN_OBJECT,
    Boolean,
    Choice,
    Field,
    Integer,
    Invalid,
    JSONObject,
    ListOf,
    Nested,
    Raw,
    Resolve,
    Shape,
    Text,
    UUIDValue,
    body_parse,
)
from ingestion.schema import LeadValidationError, parse_lead_rows
from queueing import services
from workers_mgmt.protocol import heartbeat_answer
from workers_mgmt.services import worker_config_recent

PROVIDERS = ListOf(Text(max_length=63), required=False, max_length=100)
PULL_IN = Shape("PullIn", {
    "max": Integer(min_value=1, max_value=50, default=1),
    "providers": PROVIDERS,
    "wait_s": Integer(min_value=0, max_value=60, default=0),
})
EXTEND_IN = Shape("ExtendIn", {
    "attempt_id": UUIDValue(),
    "seconds": Integer(min_value=5, max_value=12 * 3600, required=False),
})
RELEASE_IN = Shape("ReleaseIn", {"attempt_ids": ListOf(UUIDValue(), required=False, max_length=1000)})

REPORT_ERROR_IN = Shape("ReportErrorIn", {
    "code": Text(max_length=64),
    "message": Text(max_length=2000, allow_blank=True),
    "retryable": Boolean(default=True),
})
REPORT_IN = Shape("ReportIn", {
    "attempt_id": UUIDValue(),
    "outcome": Choice(services.ReportOutcome.values),
    # Checked by ingestion's lead parser (ingestion/schema.py), not field by field here: a report
    # carries up to 1,000 leads.
    "leads": Raw(schema={"type": "array", "items": {"type": "object", "additionalProperties": {}}},
                 required=False),
    "error": Nested(REPORT_ERROR_IN, required=False, allow_null=True),
    "log_tail": Text(required=False, allow_blank=True, trim=False, max_bytes=services.MAX_LOG_TAIL_BYTES,
                     help_text="The last lines of the worker's own log for this attempt (at most 16 KiB); "
                               "stored with phones and e-mail addresses masked."),
})


class IdempotencyKey(Field):
    """The key of one report: 1-200 printable ASCII characters, else 400 `idempotency_key_required`."""

    _PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or not self._PATTERN.match(value):
            raise MalformedRequest("Send an Idempotency-Key header of 1-200 printable ASCII characters.",
                                   code="idempotency_key_required")
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "string", "maxLength": 200}


class ItemJobId(Field):
    """An exchange item's job: a positive integer, else answered as a job that does not exist."""

    def parse(self, value: Any) -> int:
        if type(value) is not int or value <= 0:
            # No such URL for the v1 call: the item is answered as a job that does not exist.
            raise services.JobNotFound()
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "integer"}


IDEMPOTENCY_KEY = IdempotencyKey()
ITEM_JOB_ID = ItemJobId()
EXCHANGE_REPORT_IN = REPORT_IN.with_fields("ExchangeReportIn", job_id=ITEM_JOB_ID,
                                           idempotency_key=IDEMPOTENCY_KEY)
EXCHANGE_PULL_IN = Shape("ExchangePullIn", {
    "max": Integer(min_value=0, max_value=50, default=1),
    "providers": PROVIDERS,
})


def pull_parse(data: Any) -> dict[str, Any]:
    return body_parse(PULL_IN, data)


def extend_parse(data: Any) -> dict[str, Any]:
    return body_parse(EXTEND_IN, data)


def release_parse(data: Any) -> dict[str, Any]:
    return body_parse(RELEASE_IN, data)


def _max_leads_per_report() -> int:
    return min(worker_config_recent().max_leads_per_report, settings.LEADOPS_MAX_LEADS_PER_REPORT)


def report_parse(*, job_id: int, key: Any, raw: Any) -> services.ReportCall:
    """Check one report request (v1, or one exchange item) and parse it; raises its error answer."""
    IDEMPOTENCY_KEY.parse(key)
    data = body_parse(REPORT_IN, raw)
    try:
        leads = parse_lead_rows(data.get("leads", []), max_leads=_max_leads_per_report())
    except LeadValidationError as exc:
        raise ValidationFailed("Some leads are not valid.", fields=exc.fields) from None
    return services.ReportCall(
        job_id=job_id, attempt_id=data["attempt_id"], outcome=data["outcome"], leads=leads,
        error=data.get("error") or None,
        idempotency_key=key, request_hash=services.report_request_hash(job_id=job_id, body=raw),
        log_tail=data.get("log_tail"),
    )


class ExchangeReports(Field):
    """An exchange's `reports`: the whole request's limits, then each item parsed as its v1 report.

    An item that fails its parsing becomes its own error answer; the request goes on.
    """

    takes_null = True

    def parse(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationFailed("`reports` must be a list.", fields={"reports": ["Expected a list."]})
        most_reports = settings.LEADOPS_MAX_EXCHANGE_REPORTS
        if len(value) > most_reports:
            raise ValidationFailed(f"At most {most_reports} reports per exchange.",
                                   fields={"reports": [f"At most {most_reports} items."]})
        most_leads = settings.LEADOPS_MAX_LEADS_PER_EXCHANGE
        total = sum(len(item["leads"]) for item in value
                    if isinstance(item, dict) and isinstance(item.get("leads"), list))
        if total > most_leads:
            raise ValidationFailed(f"At most {most_leads} leads per exchange in all.",
                                   fields={"reports": [f"{total} leads; at most {most_leads}."]})
        return value

    def schema(self, resolve: Resolve) -> dict[str, Any]:
        return {"type": "array", "items": resolve(EXCHANGE_REPORT_IN)}


EXCHANGE_IN = Shape("ExchangeIn", {
    "reports": ExchangeReports(required=False),
    "pull": Nested(EXCHANGE_PULL_IN, required=False, allow_null=True),
})


@dataclass(frozen=True)
class ExchangeRequest:
    reports: list[Any]  # as sent: each result answers with its item's job_id
    items: list[services.ReportCall | services.ReportResult]
    pull: dict[str, Any] | None


def exchange_parse(data: Any) -> ExchangeRequest:
    """The exchange's body: its limits over the whole request, the pull, and every item on its own."""
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.", fields=NOT_AN_OBJECT)
    parsed = body_parse(EXCHANGE_IN, data)
    reports = parsed.get("reports", [])
    return ExchangeRequest(reports=reports, items=[_exchange_item(item) for item in reports],
                           pull=parsed.get("pull"))


def _exchange_item(item: Any) -> services.ReportCall | services.ReportResult:
    """Parse one item as its own v1 report would be; a failure becomes that item's answer."""
    if not isinstance(item, dict):
        return _item_error(ValidationFailed("Each report must be a JSON object.", fields=NOT_AN_OBJECT))
    body = {name: value for name, value in item.items() if name not in ("job_id", "idempotency_key")}
    try:
        job_id = ITEM_JOB_ID.parse(item.get("job_id"))
        return report_parse(job_id=job_id, key=item.get("idempotency_key"), raw=body)
    except Exception as exc:  # mapped exactly as the v1 endpoint's handler maps it
        return _item_error(exc)


def _item_error(exc: Exception) -> services.ReportResult:
    response = exception_handler(exc, {})
    # A backing service outage is not this item's answer: the whole exchange answers 503 and the
    # worker sends it again (same keys), rather than giving up on one report.
    if response is None or response.status_code == 503:
        raise exc
    return services.ReportResult(status=response.status_code, body=response.data)


def attempt_id_header(value: str) -> uuid.UUID:
    """The evidence upload's `X-LeadOps-Attempt-Id` header."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise MalformedRequest("Send the attempt's id in the X-LeadOps-Attempt-Id header.") from None


def media_type(content_type: str | None) -> str:
    """`image/png; charset=x` -> `image/png`: the type an evidence upload is checked against."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _at_least_one(values: dict[str, Any]) -> None:
    if "payloads" not in values and "count" not in values:
        raise Invalid(["Give `payloads` or `count` (with an optional `payload`)."])


ENQUEUE_IN = Shape("EnqueueIn", {
    "provider": Text(max_length=63),
    "payloads": ListOf(JSONObject(), min_length=1, max_length=10_000, required=False),
    "count": Integer(min_value=1, max_value=100_000, required=False),
    "payload": JSONObject(required=False),
    "priority": Integer(min_value=-32768, max_value=32767, default=0),
}, check=_at_least_one)


def enqueue_parse(data: Any) -> dict[str, Any]:
    """Staff enqueue's body (its non-object answer has no `fields`, as it always had)."""
    if not isinstance(data, dict):
        raise ValidationFailed("The body must be a JSON object.")
    return body_parse(ENQUEUE_IN, data)


# The answers, as documented (they are built by the views, never parsed).


class ClaimOut(serializers.Serializer):
    id = serializers.IntegerField()
    attempt_id = serializers.UUIDField()
    attempt = serializers.IntegerField()
    provider = serializers.CharField()
    payload = serializers.JSONField()
    lease_expires_at = serializers.DateTimeField()


class PullOut(heartbeat_answer(stands_in=True)):  # type: ignore[misc]
    jobs = ClaimOut(many=True)
    retry_after_s = serializers.IntegerField()


class ExtendOut(serializers.Serializer):
    lease_expires_at = serializers.DateTimeField()


class ReleaseOut(serializers.Serializer):
    released = serializers.IntegerField()


class ReportOut(serializers.Serializer):
    job_state = serializers.CharField()
    added = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    invalid = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField(required=False)


class ExchangeResultOut(serializers.Serializer):
    job_id = serializers.JSONField(help_text="The item's job_id as sent.")
    status = serializers.IntegerField(help_text="The HTTP status POST /jobs/{job_id}/report would answer.")
    body = serializers.JSONField(help_text="That call's answer: the report answer or its error object.")


class ExchangeOut(PullOut):
    """A pull's answer, with the result of each report."""

    results = ExchangeResultOut(many=True)


class EvidenceOut(serializers.Serializer):
    evidence_id = serializers.UUIDField()


class EnqueueOut(serializers.Serializer):
    created = serializers.IntegerField()
    job_ids = serializers.ListField(child=serializers.IntegerField(), help_text="The first 1,000 ids.")
