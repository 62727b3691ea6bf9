"""Data-subject requests and the suppression list (PDPL / GDPR): find, export and erase a number.

Every request is audited without the number in clear: the audit row keeps its masked form
(+9665****4567) and its keyed hash, which is enough to answer "did we act on this number, and when"
for a number someone gives us again (docs/PRIVACY.md, "Requests").
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from core.audit import Actor, staff_action_record
from core.logging import mask_pii
from ingestion.cities import city_canonical
from ingestion.exports import EXPORT_FIELDS
from ingestion.mentions import PhoneMatcher, PrivacyField, mentions_find, mentions_redact
from ingestion.models import DataSubjectRequest, ErasureReceipt, Lead, LeadFingerprint, SuppressedPhone
from ingestion.normalize import normalize_name, normalize_phone
from ingestion.services import CITY_KEY_MAX, NAME_KEY_MAX, fingerprint_hasher, phone_digest

# Fingerprints are deleted by primary key in chunks this big (one statement each).
ERASE_CHUNK = 1000


class PhoneNotUsable(ValueError):
    """The given text is not a phone number the normalizer can read (a bad argument)."""


@dataclass(frozen=True)
class Subject:
    """One number as a request names it: its E.164 form, the mask and the keyed hash we may keep."""

    e164: str
    masked: str
    digest: str

    def audit_detail(self) -> dict[str, str]:
        return {"phone_masked": self.masked, "phone_hmac": self.digest}


def phone_mask(*, e164: str) -> str:
    """+966501234567 -> +9665****4567: the only form of a number that staff without view_pii see."""
    return mask_pii(e164)


def subject_from_phone(*, phone: str) -> Subject:
    """Normalize a number given in any spelling (Arabic-Indic digits, +966, 00966, spaces)."""
    result = normalize_phone(phone)
    if not result.usable or result.e164 is None:
        raise PhoneNotUsable("not a phone number that can be read")
    e164 = result.e164
    return Subject(e164=e164, masked=phone_mask(e164=e164), digest=phone_digest(e164=e164))


def _fingerprints_of(subject: Subject) -> list[str]:
    """Every fingerprint this number can have: cross-day, and per-day on every day still on record.

    The oldest per-day scope is read once (a scan of a table without an index on scope: erasures
    are rare, and every report would pay for that index).
    """
    oldest = LeadFingerprint.objects.exclude(scope="all").aggregate(oldest=Min("scope"))["oldest"]
    scopes = ["all"]
    if oldest:
        day = dt.date.fromisoformat(oldest)
        # Tomorrow too: a report near midnight in another process may already write the next day.
        last = timezone.localdate() + dt.timedelta(days=1)
        while day <= last:
            scopes.append(day.isoformat())
            day += dt.timedelta(days=1)
    base = fingerprint_hasher()
    fingerprints = []
    for scope in scopes:
        hasher = base.copy()
        hasher.update(f"{scope}|{subject.e164}".encode())
        fingerprints.append(hasher.hexdigest())
    return fingerprints


def _export_value(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
        return str(value)
    return value


# The text columns of leads a request searches for the number (docs/PRIVACY.md, "What a request searches").
_LEAD_TEXT_FIELDS = ("name", "phone_raw", "city", "city_raw", "category", "address", "website", "source_url",
                     "external_id", "extra")


def lead_privacy_fields() -> list[PrivacyField]:
    """The lead columns that may mention a number; the normalized keys follow a redacted name or city."""
    derived = {
        "name": lambda name: {"name_normalized": normalize_name(name)[:NAME_KEY_MAX]},
        "city": lambda city: {"city_normalized": city_canonical(city).key[:CITY_KEY_MAX]},
    }
    return [PrivacyField(label=f"ingestion.lead.{name}", model=Lead, field=name, derived=derived.get(name))
            for name in _LEAD_TEXT_FIELDS]


def _own_lead_ids(subject: Subject, matcher: PhoneMatcher) -> list[int]:
    """The number's leads: its E.164, and leads without a usable phone whose raw phone holds it."""
    ids = list(Lead.objects.filter(phone_e164=subject.e164).values_list("pk", flat=True))
    unusable = (Lead.objects.filter(phone_e164__isnull=True).exclude(phone_raw="")
                .values_list("pk", "phone_raw"))
    ids += [pk for pk, raw in unusable.iterator(chunk_size=2000) if matcher.spans(raw)]
    return sorted(ids)


def subject_data(*, subject: Subject) -> dict[str, Any]:
    """Everything held on a number (no audit; `privacy_export` is the audited request)."""
    matcher = PhoneMatcher(e164=subject.e164)
    own = set(_own_lead_ids(subject, matcher))
    leads = [
        {name: _export_value(value) for name, value in zip(EXPORT_FIELDS, row, strict=True)}
        for row in Lead.objects.filter(pk__in=own).order_by("id").values_list(*EXPORT_FIELDS)
    ]
    # Everywhere else the number is written: other leads' text, job payloads, errors, log tails.
    mentions = mentions_find(matcher=matcher, skip=lambda field, pk: field.model is Lead and pk in own)
    fingerprints = list(
        LeadFingerprint.objects.filter(fingerprint__in=_fingerprints_of(subject))
        .order_by("created_at").values("scope", "created_at")
    )
    listed = SuppressedPhone.objects.filter(digest=subject.digest).first()
    return {
        "phone": subject.e164,
        "leads": leads,
        # Keyed hashes, not the number: what dedup keeps, and since when.
        "fingerprints": [{"scope": row["scope"], "created_at": row["created_at"].isoformat()}
                         for row in fingerprints],
        "suppressed": None if listed is None else {
            "reason": listed.reason, "created_at": listed.created_at.isoformat(),
        },
        "mentions": mentions,
    }


def export_text(data: dict[str, Any]) -> str:
    """The one text of a data-subject export (command and admin): its SHA-256 is what a request records."""
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)


def privacy_export(*, phone: str, actor: Actor) -> dict[str, Any]:
    """Answer an access request (PDPL art. 4, GDPR art. 15): everything held on a number, audited."""
    subject = subject_from_phone(phone=phone)
    with transaction.atomic():
        data = subject_data(subject=subject)
        staff_action_record(actor=actor, action="privacy.export", object_type="ingestion.lead",
                            object_count=len(data["leads"]),
                            detail={**subject.audit_detail(), "leads": len(data["leads"])})
    return data


def _suppress(*, subject: Subject, reason: str, actor: Actor) -> bool:
    """Put a number on the list; False when it was already there (the first reason stays)."""
    _, created = SuppressedPhone.objects.get_or_create(
        digest=subject.digest,
        defaults={"phone_masked": subject.masked, "reason": reason[:500], "created_by": actor.name[:150],
                  "created_at": timezone.now()},
    )
    return created


def privacy_erase(*, phone: str, reason: str, actor: Actor, suppress: bool = True,
                  request: DataSubjectRequest | None = None) -> dict[str, int | bool]:
    """Erase a number (PDPL art. 18, GDPR art. 17): its leads and fingerprints on every day, audited.

    Its leads are those with its E.164 and those without a usable phone whose raw phone holds it;
    every other place that mentions it (other leads' text, job payloads, errors, log tails; clear or
    masked) has the mention replaced with "[erased]". With `suppress` the number goes on the
    suppression list, so a worker reporting it again stores nothing; without it, the number may be
    collected again from a public source. Every erasure writes an `ErasureReceipt` (classes, counts,
    when, by whom, the keyed hash; never the number), linked to `request` when given.
    """
    subject = subject_from_phone(phone=phone)
    if not reason.strip():
        raise ValueError("a reason is required")
    fingerprints = _fingerprints_of(subject)
    with transaction.atomic():
        erased_fingerprints = 0
        for start in range(0, len(fingerprints), ERASE_CHUNK):
            erased_fingerprints += LeadFingerprint.objects.filter(
                fingerprint__in=fingerprints[start:start + ERASE_CHUNK]
            )._raw_delete(LeadFingerprint.objects.db)
        matcher = PhoneMatcher(e164=subject.e164)
        # Raw: the fingerprints are gone already, so there is nothing for on_delete to set null.
        own = Lead.objects.filter(pk__in=_own_lead_ids(subject, matcher))
        erased_leads = own._raw_delete(Lead.objects.db)
        redacted = mentions_redact(matcher=matcher)
        suppressed = _suppress(subject=subject, reason=reason, actor=actor) if suppress else False
        listed = suppressed or SuppressedPhone.objects.filter(digest=subject.digest).exists()
        staff_action_record(
            actor=actor, action="privacy.erase", object_type="ingestion.lead", object_count=erased_leads,
            detail={**subject.audit_detail(), "reason": reason[:500], "erased_leads": erased_leads,
                    "erased_fingerprints": erased_fingerprints, "suppressed": listed,
                    "redacted_mentions": redacted},
        )
        receipt = ErasureReceipt.objects.create(
            phone_hmac=subject.digest, phone_masked=subject.masked, suppressed=listed,
            reason=mask_pii(reason)[:500],
            erased_by=actor.name[:150], request=request,
            counts={"leads": erased_leads, "fingerprints": erased_fingerprints, "mentions": redacted},
        )
    return {"erased_leads": erased_leads, "erased_fingerprints": erased_fingerprints, "suppressed": listed,
            "redacted_mentions": redacted, "receipt": receipt.pk}


def receipt_document(*, receipt: ErasureReceipt) -> dict[str, Any]:
    """What the requester is given: the receipt without the number (its keyed hash and masked form only)."""
    return {
        "receipt": receipt.pk,
        "erased_at": receipt.erased_at.isoformat(),
        "erased_by": receipt.erased_by,
        "phone_masked": receipt.phone_masked,
        "phone_hmac": receipt.phone_hmac,
        "hmac": "HMAC-SHA256 of the number in E.164 under the portal's fingerprint key",
        "rows_erased": dict(receipt.counts),
        "suppressed": receipt.suppressed,
        "request": receipt.request_id,
        "reason": receipt.reason,
    }


def suppression_add(*, phone: str, reason: str, actor: Actor) -> SuppressedPhone:
    """Put a number on the suppression list (hashed, never stored in clear), audited."""
    subject = subject_from_phone(phone=phone)
    if not reason.strip():
        raise ValueError("a reason is required")
    with transaction.atomic():
        created = _suppress(subject=subject, reason=reason, actor=actor)
        staff_action_record(actor=actor, action="suppression.add", object_type="ingestion.suppressedphone",
                            object_ids=[subject.digest[:12]],
                            detail={**subject.audit_detail(), "reason": reason[:500], "created": created})
    return SuppressedPhone.objects.get(digest=subject.digest)


def suppression_remove(*, phone: str, actor: Actor) -> bool:
    """Take a number off the list (it may be stored again); False when it was not on it. Audited."""
    subject = subject_from_phone(phone=phone)
    return suppression_remove_digest(digest=subject.digest, masked=subject.masked, actor=actor)


def suppression_remove_digest(*, digest: str, masked: str, actor: Actor) -> bool:
    """Remove one entry by its digest (the admin knows entries only by digest), audited."""
    with transaction.atomic():
        deleted, _ = SuppressedPhone.objects.filter(digest=digest).delete()
        staff_action_record(actor=actor, action="suppression.remove", object_type="ingestion.suppressedphone",
                            object_ids=[digest[:12]],
                            detail={"phone_masked": masked, "phone_hmac": digest, "removed": bool(deleted)})
    return bool(deleted)
