"""Digits of every script a phone is written in, translated to ASCII by an explicit table.

Never `int()` or a regex `\\d`: they accept every script's digits and would let odd characters through
silently. Normalization (ingestion) and the PII log filter read numbers through this one table.
"""

from __future__ import annotations

ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"  # U+06F0..U+06F9 (Extended Arabic-Indic)

# Direction marks and zero-width characters: they ride along when numbers are copied from
# right-to-left pages and would otherwise make phonenumbers reject a good number.
_INVISIBLES = (
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff\u00a0"
)

_TABLE: dict[int | str, str | None] = {
    **{ord(ch): str(i) for i, ch in enumerate(ARABIC_INDIC_DIGITS)},
    **{ord(ch): str(i) for i, ch in enumerate(PERSIAN_DIGITS)},
    # The Arabic comma, decimal and thousands separators and full stop count as spaces, and a
    # fullwidth plus as a plus.
    "\u060c": " ",
    "\u066b": " ",
    "\u066c": " ",
    "\u06d4": " ",
    "\uff0b": "+",
    **{ord(ch): " " if ch == "\u00a0" else None for ch in _INVISIBLES},
}
_PHONE_TABLE = str.maketrans(_TABLE)


def phone_digits_ascii(text: str) -> str:
    """Translate Arabic-Indic and Persian digits to ASCII and drop invisible direction marks."""
    return text.translate(_PHONE_TABLE)
