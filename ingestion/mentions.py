"""Where a number is written besides a lead's own phone: free text and JSON of any stored row.

A data-subject request must find a number wherever it is stored (docs/PRIVACY.md, "What a request
searches"): in another lead's name, address or `extra`, in an invalid lead's raw phone, in a job's
payload, an error text or a worker's log tail, in any spelling (Arabic-Indic or Persian digits,
+966 / 00966 / 0, separators) and in its masked form (`+9665****4567`, how log tails are stored).

Each app declares its own text columns here (`privacy_fields_register`, queueing does it in its
`AppConfig.ready`): ingestion imports no other app, so the other apps come to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models

from core.logging import PHONE_RE, mask_pii
from ingestion.normalize import normalize_phone

# What an erased mention becomes.
ERASED = "[erased]"
SCAN_CHUNK = 2000


class PhoneMatcher:
    """Finds one number in text: every spelling that normalizes to it, and its masked form."""

    def __init__(self, *, e164: str) -> None:
        self.e164 = e164
        self.masked = mask_pii(e164)
        self._masked_re = re.compile(re.escape(self.masked))

    def spans(self, text: str) -> list[tuple[int, int, bool]]:
        """(start, end, masked) of every mention in `text`, in order."""
        found = [(m.start(), m.end(), False) for m in PHONE_RE.finditer(text)
                 if normalize_phone(m.group(0)).e164 == self.e164]
        found += [(m.start(), m.end(), True) for m in self._masked_re.finditer(text)]
        return sorted(found)

    def redact_text(self, text: str) -> tuple[str, int]:
        spans = self.spans(text)
        for start, end, _ in reversed(spans):
            text = text[:start] + ERASED + text[end:]
        return text, len(spans)

    def redact(self, value: Any) -> tuple[Any, int]:
        """`value` (text, or JSON: dicts, lists, strings) with every mention replaced, and how many."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            total, out = 0, {}
            for key, item in value.items():
                out[key], count = self.redact(item)
                total += count
            return out, total
        if isinstance(value, list):
            total, items = 0, []
            for item in value:
                new, count = self.redact(item)
                items.append(new)
                total += count
            return items, total
        return value, 0

    def mentions(self, value: Any) -> Iterator[tuple[str, bool]]:
        """(the text holding a mention, masked) for every string of `value` that mentions the number."""
        if isinstance(value, str):
            spans = self.spans(value)
            if spans:
                yield value, all(masked for _, _, masked in spans)
        elif isinstance(value, dict):
            for item in value.values():
                yield from self.mentions(item)
        elif isinstance(value, list):
            for item in value:
                yield from self.mentions(item)


@dataclass(frozen=True)
class PrivacyField:
    """A column that may hold a number in free text or JSON, and how to read and write it."""

    label: str  # as the export names it, e.g. "queueing.job.payload"
    model: type[models.Model]
    field: str
    # Columns derived from this one, recomputed after a redaction (e.g. a normalized search key).
    derived: Callable[[Any], dict[str, Any]] | None = None

    def rows(self) -> Iterator[tuple[Any, Any]]:
        """(pk, value) of every row whose value is not empty: a full scan in chunks (requests are rare)."""
        empty = models.Q(**{f"{self.field}__isnull": True})
        if isinstance(self.model._meta.get_field(self.field), (models.CharField, models.TextField)):
            empty |= models.Q(**{self.field: ""})
        queryset = self.model._default_manager.exclude(empty).order_by("pk").values_list("pk", self.field)
        yield from queryset.iterator(chunk_size=SCAN_CHUNK)


_FIELDS: list[PrivacyField] = []


def privacy_fields_register(*fields: PrivacyField) -> None:
    """Add columns that data-subject requests search (once per label; later calls replace)."""
    labels = {field.label for field in fields}
    _FIELDS[:] = [field for field in _FIELDS if field.label not in labels] + list(fields)


def privacy_fields() -> list[PrivacyField]:
    return list(_FIELDS)


def mentions_find(*, matcher: PhoneMatcher, skip: Callable[[PrivacyField, Any], bool] | None = None
                  ) -> list[dict[str, Any]]:
    """Every stored text that mentions the number: where, which row, the text, and whether masked."""
    found = []
    for field in privacy_fields():
        for pk, value in field.rows():
            if skip is not None and skip(field, pk):
                continue
            for text, masked in matcher.mentions(value):
                found.append({"where": field.label, "id": pk if isinstance(pk, int) else str(pk),
                              "text": text, "masked_only": masked})
    return found


def mentions_redact(*, matcher: PhoneMatcher, skip: Callable[[PrivacyField, Any], bool] | None = None
                    ) -> int:
    """Replace every mention of the number with "[erased]" in place; return how many were replaced."""
    total = 0
    for field in privacy_fields():
        changed: dict[Any, Any] = {}
        for pk, value in field.rows():
            if skip is not None and skip(field, pk):
                continue
            new, count = matcher.redact(value)
            if count:
                changed[pk] = new
                total += count
        for pk, new in changed.items():
            values = {field.field: new, **(field.derived(new) if field.derived else {})}
            field.model._default_manager.filter(pk=pk).update(**values)
    return total
