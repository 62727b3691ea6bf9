"""Normalize what workers report, once, at the boundary: Saudi-first phones, Arabic names and cities.

Phones go through `phonenumbers.parse(raw, "SA")`. Digits are translated to ASCII by an explicit
table (never `int()` or a regex `\\d`, which accept every script's digits and would let odd
characters through silently), so Arabic-Indic, Persian and mixed-script numbers all work.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any, NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

# The digit tables live in the kernel (the PII log filter reads them too); re-exported here.
from core.digits import ARABIC_INDIC_DIGITS, PERSIAN_DIGITS, phone_digits_ascii  # noqa: F401
from ingestion.choices import PhoneType

_TEL_PREFIX = re.compile(r"^\s*tel:\s*", re.IGNORECASE)
# "00" then a country code, written the international way without the plus.
_DOUBLE_ZERO = re.compile(r"^\s*00(?=\s*[1-9])")
# "966" at the start with no plus or 00 (a common copy of the international form), followed by a
# Saudi national number of 8 to 10 digits (10 for 800 numbers), optionally after a trunk "0".
_BARE_966 = re.compile(r"^\s*966(?=[\s.\-()]*(?:0[\s.\-()]*)?[1-9](?:[\s.\-()]*[0-9]){7,9}\s*$)")
# "(0)" after a country code, as in "+966 (0) 50 ...": the trunk zero is not dialled from abroad.
_PAREN_ZERO = re.compile(r"\(\s*0\s*\)")
# "+9660..." (the trunk zero kept after the country code).
_SA_TRUNK_ZERO = re.compile(r"^(\s*\+\s*966[\s.\-()]*)0(?=[\s.\-()]*[1-9])")

_E164 = PhoneNumberFormat.E164
# Plain strings (the choices' values), so results compare and serialize as text.
_TYPE_NAMES: dict[int, str] = {
    PhoneNumberType.MOBILE: PhoneType.MOBILE.value,
    PhoneNumberType.FIXED_LINE: PhoneType.FIXED_LINE.value,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: PhoneType.FIXED_LINE_OR_MOBILE.value,
    PhoneNumberType.TOLL_FREE: PhoneType.TOLL_FREE.value,
    PhoneNumberType.PREMIUM_RATE: PhoneType.PREMIUM_RATE.value,
    PhoneNumberType.SHARED_COST: PhoneType.SHARED_COST.value,
    PhoneNumberType.VOIP: PhoneType.VOIP.value,
    PhoneNumberType.PERSONAL_NUMBER: PhoneType.PERSONAL_NUMBER.value,
    PhoneNumberType.PAGER: PhoneType.PAGER.value,
    PhoneNumberType.UAN: PhoneType.UAN.value,
    PhoneNumberType.VOICEMAIL: PhoneType.VOICEMAIL.value,
    PhoneNumberType.UNKNOWN: PhoneType.UNKNOWN.value,
}

# Longer than any phone anyone types, with its separators; beyond this it is junk, and bounding it
# keeps the parser's work per lead bounded too.
MAX_PHONE_CHARS = 64


class PhoneResult(NamedTuple):
    """What a reported phone normalizes to; immutable, because results are cached and shared.

    A named tuple: one is built for every new number, and a frozen dataclass costs three times more.
    """

    raw: str
    e164: str | None
    valid: bool
    type: str
    region: str
    usable: bool


def _prepare(raw: str) -> str:
    text = phone_digits_ascii(raw).strip()
    # Cheap character tests guard each rewrite: most reported phones need none of them, and this
    # runs for every lead.
    if text[:4].lower() == "tel:":
        text = _TEL_PREFIX.sub("", text)
    if "(" in text:
        text = _PAREN_ZERO.sub(" ", text)
    if text.startswith("00"):
        text = _DOUBLE_ZERO.sub("+", text, count=1)
    elif text.startswith("966"):
        text = _BARE_966.sub("+966", text, count=1)
    if text.startswith("+"):
        text = _SA_TRUNK_ZERO.sub(r"\1", text, count=1)
    return text


def _unusable(raw: str) -> PhoneResult:
    return PhoneResult(raw=raw, e164=None, valid=False, type=PhoneType.UNKNOWN.value, region="", usable=False)


@lru_cache(maxsize=65536)
def normalize_phone(raw: str) -> PhoneResult:
    """Parse a reported phone (Saudi by default) into E.164, validity, type and region.

    A number is usable when it is at least possible (right length for its country); usable but
    invalid numbers are kept with `valid=False`. The result is cached: fleets report the same
    numbers again and again (that is what dedup is for), and a `PhoneResult` is immutable.
    """
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_PHONE_CHARS:
        return _unusable(raw if isinstance(raw, str) else "")
    text = _prepare(raw)
    return _saudi_mobile_fast(raw, text) or _parse_full(raw, text)


# Keep every metadata pattern phonenumbers compiles (its own documented switch): otherwise each
# check of a number against a pattern goes through the re module's lookup again.
phonenumbers.enable_pattern_cache()

# A Saudi mobile number written the plain way (05XXXXXXXX, 5XXXXXXXX or +9665XXXXXXXX, maybe with
# spaces or dashes): most of what a fleet reports. Digits are already ASCII here (`_prepare`), and
# the class is spelled [0-9] so no other script's digits can match.
_SA_MOBILE_PLAIN = re.compile(r"(?:\+966|0)?(5[0-9]{8})")
_SPACES_AND_DASHES = str.maketrans("", "", " -")


_Check = tuple[tuple[int, ...], re.Pattern[str]]


def _check(desc: Any) -> _Check | None:
    """A number description's possible lengths and its pattern, compiled once; None if it has none."""
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    return tuple(desc.possible_length or ()), re.compile(pattern)


def _matches(check: _Check | None, national: str) -> bool:
    if check is None:
        return False
    lengths, pattern = check
    return (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None


# The Saudi number types in the order `phonenumbers.number_type` tries them, from the installed
# phonenumbers metadata (nothing about Saudi numbering is written here).
_SA_METADATA: Any = PhoneMetadata.metadata_for_region("SA")  # always present: SA is in phonenumbers
_SA_GENERAL = _check(_SA_METADATA.general_desc)
_SA_SPECIAL = [
    (number_type, check) for number_type, check in (
        (PhoneNumberType.PREMIUM_RATE, _check(_SA_METADATA.premium_rate)),
        (PhoneNumberType.TOLL_FREE, _check(_SA_METADATA.toll_free)),
        (PhoneNumberType.SHARED_COST, _check(_SA_METADATA.shared_cost)),
        (PhoneNumberType.VOIP, _check(_SA_METADATA.voip)),
        (PhoneNumberType.PERSONAL_NUMBER, _check(_SA_METADATA.personal_number)),
        (PhoneNumberType.PAGER, _check(_SA_METADATA.pager)),
        (PhoneNumberType.UAN, _check(_SA_METADATA.uan)),
        (PhoneNumberType.VOICEMAIL, _check(_SA_METADATA.voicemail)),
    ) if check is not None
]
_SA_FIXED_LINE = _check(_SA_METADATA.fixed_line)
_SA_MOBILE = _check(_SA_METADATA.mobile)
_SA_SAME_MOBILE_AND_FIXED = bool(_SA_METADATA.same_mobile_and_fixed_line_pattern)


def _saudi_type(national: str) -> int:
    """`phonenumbers.number_type` of a Saudi national number, decided the way its helper does.

    The same checks in the same order, minus the metadata lookup and the two regex runs of each
    check, which together cost more than the checks. A test compares it with phonenumbers over
    every three-digit prefix.
    """
    if not _matches(_SA_GENERAL, national):
        return PhoneNumberType.UNKNOWN
    for number_type, check in _SA_SPECIAL:
        if _matches(check, national):
            return number_type
    if _matches(_SA_FIXED_LINE, national):
        if _SA_SAME_MOBILE_AND_FIXED or _matches(_SA_MOBILE, national):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not _SA_SAME_MOBILE_AND_FIXED and _matches(_SA_MOBILE, national):
        return PhoneNumberType.MOBILE
    return PhoneNumberType.UNKNOWN


def _saudi_mobile_fast(raw: str, text: str) -> PhoneResult | None:
    """Classify a plainly written Saudi mobile number without running the full parser.

    `phonenumbers.parse` spends most of its time finding the country and the national number in
    free text; for this one shape both are known, so the number is built directly and phonenumbers'
    own metadata still decides its type. Only a number that comes out valid is answered here;
    anything else takes the full parser, so both paths agree (a test compares them).
    """
    match = _SA_MOBILE_PLAIN.fullmatch(text.translate(_SPACES_AND_DASHES))
    if match is None:
        return None
    national = match.group(1)
    number_type = _saudi_type(national)
    if number_type == PhoneNumberType.UNKNOWN:
        return None
    return PhoneResult(raw=raw, e164="+966" + national, valid=True,
                       type=_TYPE_NAMES.get(number_type, PhoneType.UNKNOWN.value), region="SA", usable=True)


def _parse_full(raw: str, text: str) -> PhoneResult:
    try:
        number = phonenumbers.parse(text, "SA")
    except phonenumbers.NumberParseException:
        return _unusable(raw)
    if not phonenumbers.is_possible_number(number):
        return _unusable(raw)
    e164 = phonenumbers.format_number(number, _E164)
    if number.italian_leading_zero and not _reads_back(e164):
        # Leading zeros kept in the national number (`0100000` read as +966 0100000, `+60 0000000000`)
        # make an E.164 that normalizes to another number or to none: junk, not a phone.
        return _unusable(raw)
    # `number_type` is what `is_valid_number` decides validity with (a number is valid exactly when
    # its national number matches one of its region's type patterns), so one call gives both.
    number_type = phonenumbers.number_type(number)
    region = phonenumbers.region_code_for_number(number) or ""
    valid = number_type != PhoneNumberType.UNKNOWN and bool(region)
    return PhoneResult(
        raw=raw,
        e164=e164,
        valid=valid,
        type=_TYPE_NAMES.get(number_type, PhoneType.UNKNOWN.value),
        region=region or phonenumbers.region_code_for_country_code(number.country_code or 0) or "",
        usable=True,
    )


def _reads_back(e164: str) -> bool:
    """Whether an E.164 number normalizes to itself (asked only of the rare leading-zero numbers)."""
    try:
        again = phonenumbers.parse(_prepare(e164), "SA")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(again) and phonenumbers.format_number(again, _E164) == e164


# Arabic marks removed from names and cities: tashkeel (fathatan .. sukun), the superscript alef,
# Quranic annotation marks, and the tatweel (kashida) used to stretch words.
_ARABIC_MARKS = (
    [chr(cp) for cp in range(0x064B, 0x0660)]  # tashkeel U+064B..U+0652 and the extended marks to U+065F
    + ["\u0670", "\u0640"]  # superscript alef, tatweel
    + [chr(cp) for cp in range(0x06D6, 0x06DD)]  # Quranic small high marks
    + [chr(cp) for cp in range(0x06DF, 0x06E5)]
    + [chr(cp) for cp in range(0x06E7, 0x06E9)]
    + [chr(cp) for cp in range(0x06EA, 0x06EE)]
)
_INVISIBLE_TEXT = "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
# One compiled character class removes every mark in one C-level pass; str.translate with a dict
# costs several microseconds per name on non-ASCII text, and this runs for every lead.
_REMOVE = re.compile("[" + "".join(_ARABIC_MARKS) + _INVISIBLE_TEXT + "]")
_LETTERS = (
    # Alef forms: with hamza above / below, with madda, wasla -> bare alef.
    ("أ", "ا"),
    ("إ", "ا"),
    ("آ", "ا"),
    ("ٱ", "ا"),
    # Ta marbuta -> ha, alef maqsura -> ya: written interchangeably in names and on signs.
    ("ة", "ه"),
    ("ى", "ي"),
    # Persian letter forms that NFKC keeps apart from their Arabic twins.
    ("ی", "ي"),
    ("ک", "ك"),
)
_ANY_LETTER = re.compile("[" + "".join(old for old, _ in _LETTERS) + "]")


@lru_cache(maxsize=16384)
def _normalize_text(text: str) -> str:
    # Cached: a fleet reports the same cities, and the same shops again and again, all day.
    if not text:
        return ""
    text = _REMOVE.sub("", unicodedata.normalize("NFKC", text).casefold())
    if _ANY_LETTER.search(text):
        for old, new in _LETTERS:
            text = text.replace(old, new)
    # str.split() without an argument splits on every Unicode space and drops the ends: the same
    # collapse as a regex, several times faster on non-ASCII text.
    return " ".join(text.split())


def normalize_name(text: str) -> str:
    """Return a business name as a comparison key: NFKC, case-folded, Arabic marks and forms unified."""
    return _normalize_text(text)


def normalize_city(text: str) -> str:
    """Return a city as a comparison and filter key, normalized like a name."""
    return _normalize_text(text)
