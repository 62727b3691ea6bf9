"""Lead exports (admin CSV / JSONL and `leads_export`): the rows, masked or not, without suppressed numbers.

A number on the suppression list leaves the portal in no export: a lead whose own number is listed
is left out (and counted), and a listed number written in another lead's text (name, address,
`extra`, a raw phone) is replaced with "[suppressed]". The list holds keyed hashes only, so the
export hashes the numbers it meets and compares (docs/PRIVACY.md, "Suppression list").
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from core.logging import PHONE_RE, mask_pii
from ingestion.models import Lead, SuppressedPhone
from ingestion.normalize import normalize_phone
from ingestion.services import phone_digest

EXPORT_CHUNK = 2000
# Everything stored about a lead: the leads export and a data-subject export (ingestion/privacy.py).
EXPORT_FIELDS = (
    "id", "name", "phone_raw", "phone_e164", "phone_valid", "phone_type", "phone_region", "city",
    "city_raw", "category", "address", "website", "source_url", "external_id", "lat", "lng", "rating",
    "extra",
    "provider", "worker_id", "job_id", "attempt_id", "local_day", "created_at",
)
SUPPRESSED = "[suppressed]"


def value_masked(value: Any) -> Any:
    """Mask every phone (and email) inside a text or JSON value; other values pass unchanged."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, dict | list):
        return json.loads(mask_pii(json.dumps(value, ensure_ascii=False)))
    return value


@dataclass
class LeadExport:
    """One export: the leads to write, and how many were left out because their number is suppressed."""

    queryset: QuerySet[Lead]
    left_out: int = 0
    digests: set[str] = field(default_factory=set)

    def _listed(self, text: str) -> bool:
        e164 = normalize_phone(text).e164
        return e164 is not None and phone_digest(e164=e164) in self.digests

    def _scrub(self, value: Any) -> Any:
        """`value` (text or JSON) with every suppressed number in it replaced."""
        if isinstance(value, str):
            return PHONE_RE.sub(lambda m: SUPPRESSED if self._listed(m.group(0)) else m.group(0), value)
        if isinstance(value, dict):
            return {key: self._scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub(item) for item in value]
        return value

    def rows(self, *, masked: bool = False) -> Iterator[tuple[Any, ...]]:
        rows = self.queryset.order_by("id").values_list(*EXPORT_FIELDS).iterator(chunk_size=EXPORT_CHUNK)
        for row in rows:
            if self.digests:
                row = tuple(self._scrub(value) for value in row)
            # Every text column, not only the phone ones: a worker may put a number in a name or in extra.
            yield tuple(value_masked(value) for value in row) if masked else row

    def records(self, *, masked: bool = False) -> Iterator[dict[str, Any]]:
        """The rows as JSON-ready objects (JSON Lines)."""
        for row in self.rows(masked=masked):
            record = dict(zip(EXPORT_FIELDS, row, strict=True))
            for key, value in record.items():
                if isinstance(value, (dt.date, dt.datetime)):
                    record[key] = value.isoformat()
                elif key == "attempt_id" and value is not None:
                    record[key] = str(value)
            yield record


def lead_export(*, queryset: QuerySet[Lead]) -> LeadExport:
    """Prepare an export of `queryset`: leave out the leads whose number is on the suppression list.

    The distinct numbers of the selection are hashed once (the database does the DISTINCT), so the
    left-out count is known before the first row is written.
    """
    digests = set(SuppressedPhone.objects.values_list("digest", flat=True))
    if not digests:
        return LeadExport(queryset=queryset)
    numbers = (queryset.exclude(phone_e164__isnull=True).order_by().values_list("phone_e164", flat=True)
               .distinct().iterator(chunk_size=EXPORT_CHUNK))
    listed = [e164 for e164 in numbers if e164 and phone_digest(e164=e164) in digests]
    if not listed:
        return LeadExport(queryset=queryset, digests=digests)
    left_out = queryset.filter(phone_e164__in=listed).count()
    return LeadExport(queryset=queryset.exclude(phone_e164__in=listed), left_out=left_out, digests=digests)


def jsonl_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"
