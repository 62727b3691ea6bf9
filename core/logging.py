"""Keep phone numbers and email addresses out of the logs (PDPL Art. 11/18, GDPR Recital 26).

`PiiMaskingFilter` rewrites each record before it is written: Saudi phones in any form (+966, 00966,
966, 05..., 01..., 800, 9200, with Arabic-Indic or Persian digits and the usual separators) become
`+9665****4567`, other international numbers `+1****2671`, and emails `a***@example.com`.
Attach it to *handlers*: a filter on a logger does not see records propagated from child loggers.
"""

from __future__ import annotations

import logging
import re

from core.digits import phone_digits_ascii

# Every digit a phone may be written with; explicit ranges, never `\d`.
_D = "[0-9\u0660-\u0669\u06f0-\u06f9]"
# Separators people put inside numbers.
_S = r"[ \u00a0.\-()]{0,2}"
_NOT_DIGIT_BEFORE = r"(?<![0-9\u0660-\u0669\u06f0-\u06f9+])"
_NOT_DIGIT_AFTER = r"(?![0-9\u0660-\u0669\u06f0-\u06f9])"

# A Saudi number: the international forms (+966 / 00966 / 966, optionally "(0)" or "0" after the
# code) or the national form with its trunk zero, then 8 to 10 national digits.
_SAUDI = (
    # The international prefix 00 may be written in Arabic-Indic or Persian digits too.
    rf"(?:(?:\+|00|٠٠|۰۰|(?<![0-9\u0660-\u0669\u06f0-\u06f9]))(?:966|٩٦٦|۹۶۶){_S}(?:\(0\){_S}|0{_S})?"
    rf"|(?:0|٠|۰)(?={_D}))"
    rf"(?:{_D}{_S}){{7,9}}{_D}"
)
# Any other international number: a plus, then 8 to 15 digits with separators.
_INTERNATIONAL = rf"\+{_S}(?:{_D}{_S}){{7,14}}{_D}"
# Toll-free and unified numbers without a prefix: 800 xxx xxxx and 9200 xxxxx.
_SERVICE = rf"(?:800|٨٠٠|۸۰۰){_S}(?:{_D}{_S}){{6}}{_D}|(?:9200|٩٢٠٠|۹۲۰۰){_S}(?:{_D}{_S}){{4}}{_D}"

PHONE_RE = re.compile(rf"{_NOT_DIGIT_BEFORE}(?:{_SAUDI}|{_INTERNATIONAL}|{_SERVICE}){_NOT_DIGIT_AFTER}")
EMAIL_RE = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")

_DIGITS_ONLY = re.compile(r"[^0-9]")


def _mask_phone(match: re.Match[str]) -> str:
    digits = _DIGITS_ONLY.sub("", phone_digits_ascii(match.group(0)))
    # Bring the Saudi forms to the international one, so the mask shows country code + first digit.
    if digits.startswith("00966"):
        digits = digits[2:]
    elif digits.startswith("0") and not match.group(0).lstrip().startswith("+"):
        digits = "966" + digits[1:]
    elif digits.startswith(("800", "9200")) and not match.group(0).lstrip().startswith("+"):
        digits = "966" + digits
    if digits.startswith("9660"):
        digits = "966" + digits[4:]
    if digits.startswith("966"):
        return f"+966{digits[3:4]}****{digits[-4:]}"
    return f"+{digits[:1]}****{digits[-4:]}"


def mask_pii(text: str) -> str:
    """Return `text` with every phone number and email address masked."""
    if not text:
        return text
    text = PHONE_RE.sub(_mask_phone, text)
    if "@" in text:
        text = EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return text


class PiiMaskingFilter(logging.Filter):
    """Mask phones and emails in a record's message, arguments, exception and stack text.

    When the record has arguments, the message is formatted first and masked as a whole: a phone
    can hide in any argument (an int, a dict of a lead, an exception), and formatting after
    masking would fail when a masked value replaced a number meant for `%d`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if record.args:
                message = record.getMessage()
                masked = mask_pii(message)
                if masked != message:
                    record.msg, record.args = masked, None
            elif isinstance(record.msg, str):
                record.msg = mask_pii(record.msg)
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = mask_pii(record.exc_text)
            if record.stack_info:
                record.stack_info = mask_pii(record.stack_info)
        except Exception:
            record.msg, record.args = "[log message withheld: it could not be masked]", None
        return True

