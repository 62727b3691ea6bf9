"""Data-subject requests: receipt, the 30-day clock, one extension, the actions linked, closure.

PDPL has a request answered within 30 days, extendable once by up to 30 more with notice to the
person. A request holds its number only as the keyed hash (the suppression list's digest) and the
masked form; acting on it (`privacy_export` / `privacy_erase --request ID`) means typing the number
again, and the service refuses a number that does not hash to the request's (docs/PRIVACY.md,
"Data-subject requests"). Every change is audited (`privacy.request_*`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit import Actor, staff_action_record
from core.logging import mask_pii
from ingestion.models import (
    DataSubjectRequest,
    ErasureReceipt,
    RequestAction,
    RequestActionKind,
    RequestStatus,
    SuppressedPhone,
)
from ingestion.privacy import (
    Subject,
    export_text,
    privacy_erase,
    privacy_export,
    subject_from_phone,
    suppression_add,
)

ANSWER_DAYS = 30
EXTENSION_MAX_DAYS = 30
OBJECT_TYPE = "ingestion.datasubjectrequest"


class RequestError(ValueError):
    """A request change that is not allowed (a second extension, a closed request, another number)."""


def request_open(*, kind: str, channel: str, phone: str, actor: Actor, reference: str = "", notes: str = "",
                 received_at: dt.datetime | None = None) -> DataSubjectRequest:
    """Record a request as received; it is due 30 days after `received_at` (default now). Audited."""
    subject = subject_from_phone(phone=phone)
    received = received_at or timezone.now()
    with transaction.atomic():
        request = DataSubjectRequest.objects.create(
            kind=kind, channel=channel, phone_hmac=subject.digest, phone_masked=subject.masked,
            reference=mask_pii(reference)[:200], notes=mask_pii(notes), received_at=received,
            due_at=received + dt.timedelta(days=ANSWER_DAYS), created_by=actor.name[:150],
        )
        staff_action_record(actor=actor, action="privacy.request_open", object_type=OBJECT_TYPE,
                            object_ids=[request.pk],
                            detail={**subject.audit_detail(), "kind": kind, "channel": channel,
                                    "due_at": request.due_at.isoformat()})
    return request


def _locked_open(request_id: int) -> DataSubjectRequest:
    request = DataSubjectRequest.objects.select_for_update().get(pk=request_id)
    if not request.is_open:
        raise RequestError(f"request {request_id} is closed")
    return request


def _action(request: DataSubjectRequest, kind: str, actor: Actor, detail: dict[str, Any],
            receipt: ErasureReceipt | None = None) -> RequestAction:
    return RequestAction.objects.create(request=request, kind=kind, actor=actor.name[:150], detail=detail,
                                        receipt=receipt)


def request_extend(*, request_id: int, days: int, reason: str, actor: Actor) -> DataSubjectRequest:
    """Move the due date once, by 1 to 30 days, with a reason (tell the person why). Audited."""
    if not 1 <= days <= EXTENSION_MAX_DAYS:
        raise RequestError(f"an extension is 1 to {EXTENSION_MAX_DAYS} days")
    if not reason.strip():
        raise RequestError("an extension needs a reason")
    with transaction.atomic():
        request = _locked_open(request_id)
        if request.extended_days:
            raise RequestError(f"request {request_id} was extended already (once only)")
        before = request.due_at
        request.due_at = before + dt.timedelta(days=days)
        request.extended_days, request.extension_reason = days, mask_pii(reason)[:500]
        request.extended_at, request.status = timezone.now(), RequestStatus.EXTENDED
        request.save(update_fields=["due_at", "extended_days", "extension_reason", "extended_at", "status"])
        detail = {"days": days, "reason": request.extension_reason, "due_before": before.isoformat(),
                  "due_at": request.due_at.isoformat()}
        _action(request, RequestActionKind.EXTENSION, actor, detail)
        staff_action_record(actor=actor, action="privacy.request_extend", object_type=OBJECT_TYPE,
                            object_ids=[request.pk], detail=detail)
    return request


def request_close(*, request_id: int, outcome: str, actor: Actor, refused: bool = False
                  ) -> DataSubjectRequest:
    """Close a request as answered (or refused, with the reasons in `outcome`). Audited."""
    if not outcome.strip():
        raise RequestError("closing a request needs an outcome")
    with transaction.atomic():
        request = _locked_open(request_id)
        request.status = RequestStatus.REFUSED if refused else RequestStatus.CLOSED
        request.outcome, request.closed_at = mask_pii(outcome)[:1000], timezone.now()
        request.save(update_fields=["status", "outcome", "closed_at"])
        detail = {"status": request.status, "outcome": request.outcome,
                  "on_time": request.closed_at <= request.due_at}
        _action(request, RequestActionKind.CLOSURE, actor, detail)
        staff_action_record(actor=actor, action="privacy.request_close", object_type=OBJECT_TYPE,
                            object_ids=[request.pk], detail=detail)
    return request


def request_for_subject(*, request_id: int, subject: Subject) -> DataSubjectRequest:
    """The open request `request_id`, checked to be about this number (its keyed hash)."""
    request = DataSubjectRequest.objects.filter(pk=request_id).first()
    if request is None:
        raise RequestError(f"no data-subject request {request_id}")
    if not request.is_open:
        raise RequestError(f"request {request_id} is closed")
    if request.phone_hmac != subject.digest:
        raise RequestError(f"request {request_id} is about another number ({request.phone_masked})")
    return request


def request_link(*, request_id: int, kind: str, actor: Actor, detail: dict[str, Any],
                 receipt: ErasureReceipt | None = None) -> RequestAction:
    """Link an action (an export file, an erasure receipt, a suppression) to its request."""
    with transaction.atomic():
        request = _locked_open(request_id)
        return _action(request, kind, actor, detail, receipt)


def request_export(*, request_id: int, phone: str, actor: Actor, file_name: str = ""
                   ) -> tuple[dict[str, Any], str]:
    """Answer an access request: the export (audited as `privacy.export`) linked to the request.

    Returns the data and its text (`export_text`); the request keeps the file's name, SHA-256 and
    counts, so the file sent can be proved later without the portal keeping a copy.
    """
    subject = subject_from_phone(phone=phone)
    with transaction.atomic():
        request_for_subject(request_id=request_id, subject=subject)
        data = privacy_export(phone=phone, actor=actor)
        text = export_text(data)
        request_link(request_id=request_id, kind=RequestActionKind.EXPORT, actor=actor, detail={
            "file": file_name, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "leads": len(data["leads"]),
            "mentions": len(data["mentions"]), "fingerprints": len(data["fingerprints"]),
        })
    return data, text


def request_erase(*, request_id: int, phone: str, reason: str, actor: Actor, suppress: bool = True
                  ) -> dict[str, int | bool]:
    """Answer an erasure (or objection) request: erase, link the receipt and the suppression to it."""
    subject = subject_from_phone(phone=phone)
    with transaction.atomic():
        request = request_for_subject(request_id=request_id, subject=subject)
        result = privacy_erase(phone=phone, reason=reason, actor=actor, suppress=suppress, request=request)
        receipt = ErasureReceipt.objects.get(pk=result["receipt"])
        request_link(request_id=request_id, kind=RequestActionKind.ERASURE, actor=actor,
                     detail={"receipt": receipt.pk, **receipt.counts}, receipt=receipt)
        if result["suppressed"]:
            request_link(request_id=request_id, kind=RequestActionKind.SUPPRESSION, actor=actor,
                         detail={"phone_hmac": subject.digest})
    return result


def request_suppress(*, request_id: int, phone: str, reason: str, actor: Actor) -> SuppressedPhone:
    """Answer an objection (opt-out) without erasure: the number on the suppression list, linked."""
    subject = subject_from_phone(phone=phone)
    with transaction.atomic():
        request_for_subject(request_id=request_id, subject=subject)
        entry = suppression_add(phone=phone, reason=reason, actor=actor)
        request_link(request_id=request_id, kind=RequestActionKind.SUPPRESSION, actor=actor,
                     detail={"phone_hmac": subject.digest})
    return entry
