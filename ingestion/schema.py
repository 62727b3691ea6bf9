"""Validate the leads of a report: a hand-written, fast check of docs/API.md's lead shape.

A report holds up to 1,000 leads; a serializer per lead would cost more than ingesting them, so this
checks types and sizes with plain Python (about a microsecond per field). What is wrong is reported
per field as `leads[3].phone`, the protocol's 422 `fields`. A phone that is empty or junk is *not* an
error here: it is a lead with an unusable phone, stored flagged and counted as invalid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from core.protocol import json_storable_problem
from core.text import text_storable

# Field limits. They match the columns of `Lead`, so a valid lead always fits its row.
NAME_MAX = 500
PHONE_MAX = 100
EXTRA_MAX_BYTES = 8192
EXTRA_MAX_DEPTH = 8
STRING_FIELDS: dict[str, int] = {
    "city": 200,
    "category": 200,
    "address": 1000,
    "website": 2048,
    "source_url": 2048,
    "external_id": 255,
}
NUMBER_FIELDS: dict[str, tuple[float, float]] = {
    "lat": (-90.0, 90.0),
    "lng": (-180.0, 180.0),
    "rating": (0.0, 5.0),
}
# Stop collecting after this many problems: the answer stays small even for 1,000 bad leads.
MAX_ERRORS = 50



# Not frozen: a frozen dataclass sets each field through object.__setattr__, which triples the cost
# of building a thousand leads. Treat it as read-only all the same.
@dataclass(slots=True)
class LeadInput:
    name: str
    phone: str
    city: str = ""
    category: str = ""
    address: str = ""
    website: str = ""
    source_url: str = ""
    external_id: str = ""
    lat: float | None = None
    lng: float | None = None
    rating: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LeadValidationError(Exception):
    """Raised with every problem found, keyed like `leads[3].phone`."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__(f"{len(fields)} lead field(s) are not valid")


def _number_problem(value: object, *, low: float, high: float) -> str | None:
    # bool is an int subclass in Python, but `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "Must be a number."
    if isinstance(value, float) and not math.isfinite(value):
        return "Must be a finite number."
    if not low <= value <= high:
        return f"Must be between {low:g} and {high:g}."
    return None


def _extra_problem(value: object) -> str | None:
    if not isinstance(value, dict):
        return "Must be an object."
    if not value:
        return None
    # What jsonb would refuse (NUL, surrogates, NaN, deep nesting): the protocol's one check.
    problem = json_storable_problem(value, max_depth=EXTRA_MAX_DEPTH)
    if problem:
        return problem
    # Serializing costs more than the rest of a lead's checks together; skip it when even the worst
    # case (every character as a 6-byte escape) of a small object is under the limit.
    if _size_bound(value) * 6 <= EXTRA_MAX_BYTES:
        return None
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > EXTRA_MAX_BYTES:
        return f"At most {EXTRA_MAX_BYTES} bytes as JSON."
    return None


def _size_bound(value: object) -> int:
    """Count the characters of a JSON value's text, roughly from above (numbers as 24 characters)."""
    if isinstance(value, str):
        return len(value) + 2
    if isinstance(value, dict):
        return 2 + sum(len(key) + 3 + _size_bound(item) for key, item in value.items())
    if isinstance(value, list):
        return 2 + sum(1 + _size_bound(item) for item in value)
    return 24


def _has_bad_chars(text: str) -> bool:
    """Tell whether text holds a NUL or a lone surrogate."""
    return not text_storable(text)


_TEXT_LIMITS: tuple[tuple[str, int], ...] = tuple(STRING_FIELDS.items())
_NUMBER_LIMITS: tuple[tuple[str, float, float], ...] = tuple(
    (key, low, high) for key, (low, high) in NUMBER_FIELDS.items()
)


def _clean_row(row: dict[str, Any]) -> LeadInput | None:
    """Return a lead that passes every check, typed, or None for `_parse_row` to name the problems.

    Nearly every reported lead is clean, and this is the check a 1,000-lead report runs 1,000
    times, so it tests exact types (`bool` is not a number, a `str` subclass is not a string) with
    no per-field calls, and leaves every message to the slow path.
    """
    name = row.get("name")
    phone = row.get("phone")
    if type(name) is not str or type(phone) is not str or len(name) > NAME_MAX or len(phone) > PHONE_MAX:
        return None
    lead = LeadInput(name, phone)
    texts = [name, phone]
    for key, max_length in _TEXT_LIMITS:
        value = row.get(key)
        if value is None:
            continue
        if type(value) is not str or len(value) > max_length:
            return None
        setattr(lead, key, value)
        texts.append(value)
    if _has_bad_chars("".join(texts)):
        return None
    for key, low, high in _NUMBER_LIMITS:
        value = row.get(key)
        if value is None:
            continue
        kind = type(value)
        if kind is float:
            # NaN fails both comparisons; infinities fail one.
            if not low <= value <= high:
                return None
        elif kind is int:
            if not low <= value <= high:
                return None
            value = float(value)
        else:
            return None
        setattr(lead, key, value)
    extra = row.get("extra")
    if extra is not None:
        if _extra_problem(extra):
            return None
        lead.extra = extra
    return lead


def _required_text(row: dict[str, Any], key: str, most: int, problems: dict[str, str],
                   texts: list[str]) -> Any:
    """Check a required string field; note its problem, or keep its text for the storable check."""
    value = row.get(key)
    if value is None:
        problems[key] = "This field is required."
    elif not isinstance(value, str):
        problems[key] = "Must be a string."
    elif len(value) > most:
        problems[key] = f"At most {most} characters."
    else:
        texts.append(value)
    return value


def _parse_row(row: dict[str, Any], prefix: str, errors: dict[str, list[str]]) -> LeadInput | None:
    """Check one lead; record its problems in `errors` and return None, or return it typed."""
    problems: dict[str, str] = {}
    texts: list[str] = []
    name = _required_text(row, "name", NAME_MAX, problems, texts)
    phone = _required_text(row, "phone", PHONE_MAX, problems, texts)

    values: dict[str, Any] = {}
    for key, max_length in STRING_FIELDS.items():
        value = row.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            problems[key] = "Must be a string."
        elif len(value) > max_length:
            problems[key] = f"At most {max_length} characters."
        else:
            values[key] = value
            texts.append(value)
    # One search over all of a lead's text instead of one per field: nearly every lead is clean,
    # and only a dirty one is searched again field by field to name the culprit.
    if _has_bad_chars("".join(texts)):
        for key, value in (("name", name), ("phone", phone), *values.items()):
            if isinstance(value, str) and _has_bad_chars(value):
                problems[key] = "Contains a NUL character or an unpaired surrogate."
    for key, (low, high) in NUMBER_FIELDS.items():
        value = row.get(key)
        if value is None:
            continue
        problem = _number_problem(value, low=low, high=high)
        if problem:
            problems[key] = problem
        else:
            values[key] = float(value)
    extra = row.get("extra")
    if extra is not None:
        problem = _extra_problem(extra)
        if problem:
            problems["extra"] = problem
        else:
            values["extra"] = extra
    if problems:
        for key, problem in problems.items():
            errors[f"{prefix}.{key}"] = [problem]
        return None
    return LeadInput(name=name, phone=phone, **values)


def parse_lead_rows(raw: object, *, max_leads: int, field_name: str = "leads") -> list[LeadInput]:
    """Check the leads of a report and return them typed; raise `LeadValidationError` when any is wrong.

    Unknown keys are ignored (workers may send more than the portal keeps); optional fields may be
    absent or null.
    """
    if not isinstance(raw, list):
        raise LeadValidationError({field_name: ["Must be a list of lead objects."]})
    if len(raw) > max_leads:
        raise LeadValidationError({field_name: [f"At most {max_leads} leads per report."]})
    errors: dict[str, list[str]] = {}
    leads: list[LeadInput] = []
    for index, row in enumerate(raw):
        if len(errors) >= MAX_ERRORS:
            break
        if not isinstance(row, dict):
            errors[f"{field_name}[{index}]"] = ["Must be an object."]
            continue
        lead = _clean_row(row) or _parse_row(row, f"{field_name}[{index}]", errors)
        if lead is not None:
            leads.append(lead)
    if errors:
        raise LeadValidationError(errors)
    return leads
