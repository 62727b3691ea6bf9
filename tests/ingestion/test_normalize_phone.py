"""Phones: every format workers send, parsed with phonenumbers for region SA (docs/SYSTEM_OVERVIEW.md, "Semantics")."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from ingestion.normalize import normalize_phone

MOBILE_E164 = "+966501234567"

# (raw, expected E.164 or None when not usable, valid, type, region)
CASES = [
    # Saudi mobile in every written form.
    ("0501234567", MOBILE_E164, True, "mobile", "SA"),
    ("+966501234567", MOBILE_E164, True, "mobile", "SA"),
    ("00966501234567", MOBILE_E164, True, "mobile", "SA"),
    ("966501234567", MOBILE_E164, True, "mobile", "SA"),
    ("+9660501234567", MOBILE_E164, True, "mobile", "SA"),
    ("9660501234567", MOBILE_E164, True, "mobile", "SA"),
    ("00966 0501234567", MOBILE_E164, True, "mobile", "SA"),
    ("+966 (0) 50 123 4567", MOBILE_E164, True, "mobile", "SA"),
    ("+966(0)501234567", MOBILE_E164, True, "mobile", "SA"),
    ("tel:+966-50-123-4567", MOBILE_E164, True, "mobile", "SA"),
    ("tel:0501234567", MOBILE_E164, True, "mobile", "SA"),
    ("TEL: 050 123 4567", MOBILE_E164, True, "mobile", "SA"),
    ("050-123-4567", MOBILE_E164, True, "mobile", "SA"),
    ("050.123.4567", MOBILE_E164, True, "mobile", "SA"),
    ("(050) 123 4567", MOBILE_E164, True, "mobile", "SA"),
    ("966 50 123 4567", MOBILE_E164, True, "mobile", "SA"),
    ("+966-50-123-4567", MOBILE_E164, True, "mobile", "SA"),
    ("  0501234567  ", MOBILE_E164, True, "mobile", "SA"),
    ("+966 50 123 4567 ext 12", MOBILE_E164, True, "mobile", "SA"),
    # Arabic-Indic, Persian and mixed digits, and direction marks copied from RTL pages.
    ("٠٥٠١٢٣٤٥٦٧", MOBILE_E164, True, "mobile", "SA"),
    ("+٩٦٦٥٠١٢٣٤٥٦٧", MOBILE_E164, True, "mobile", "SA"),
    ("٠٠٩٦٦٥٠١٢٣٤٥٦٧", MOBILE_E164, True, "mobile", "SA"),
    ("٠٥٠-١٢٣-٤٥٦٧", MOBILE_E164, True, "mobile", "SA"),
    ("۰۵۰۱۲۳۴۵۶۷", MOBILE_E164, True, "mobile", "SA"),
    ("05٠1234567", MOBILE_E164, True, "mobile", "SA"),
    ("٠٥۰1234٥٦٧", MOBILE_E164, True, "mobile", "SA"),
    ("\u200f0501234567\u200e", MOBILE_E164, True, "mobile", "SA"),
    ("\u202b+966 50 123 4567\u202c", MOBILE_E164, True, "mobile", "SA"),
    # Other Saudi mobile prefixes.
    ("0551111111", "+966551111111", True, "mobile", "SA"),
    ("0531234567", "+966531234567", True, "mobile", "SA"),
    ("0581234567", "+966581234567", True, "mobile", "SA"),
    ("0591234567", "+966591234567", True, "mobile", "SA"),
    # Landlines.
    ("0112345678", "+966112345678", True, "fixed_line", "SA"),
    ("(011) 234-5678", "+966112345678", True, "fixed_line", "SA"),
    ("+966 11 234 5678", "+966112345678", True, "fixed_line", "SA"),
    ("012 234 5678", "+966122345678", True, "fixed_line", "SA"),
    ("٠١٣٨١٢٣٤٥٦", "+966138123456", True, "fixed_line", "SA"),
    # Toll free 800 and the unified 9200 numbers.
    ("8001234567", "+9668001234567", True, "toll_free", "SA"),
    ("800 124 0000", "+9668001240000", True, "toll_free", "SA"),
    ("+966 800 124 0000", "+9668001240000", True, "toll_free", "SA"),
    ("920012345", "+966920012345", True, "shared_cost", "SA"),
    ("9200 12345", "+966920012345", True, "shared_cost", "SA"),
    ("٩٢٠٠١٢٣٤٥", "+966920012345", True, "shared_cost", "SA"),
    ("+966920012345", "+966920012345", True, "shared_cost", "SA"),
    # Foreign numbers are kept, with their own region.
    ("+14155552671", "+14155552671", True, "fixed_line_or_mobile", "US"),
    ("+1 (415) 555-2671", "+14155552671", True, "fixed_line_or_mobile", "US"),
    ("+971501234567", "+971501234567", True, "mobile", "AE"),
    ("00971 50 123 4567", "+971501234567", True, "mobile", "AE"),
    ("+442079460000", "+442079460000", True, "fixed_line", "GB"),
    ("+20 10 1234 5678", "+201012345678", True, "mobile", "EG"),
    # Possible (usable) but not valid: kept, flagged invalid.
    ("0811234567", "+966811234567", False, "unknown", "SA"),
    ("+9665012345678", "+9665012345678", False, "unknown", "SA"),
    # Not usable: junk, too short, too long, letters.
    ("junk", None, False, "unknown", ""),
    ("", None, False, "unknown", ""),
    ("   ", None, False, "unknown", ""),
    ("12345", None, False, "unknown", ""),
    ("05012", None, False, "unknown", ""),
    ("+966501234", None, False, "unknown", ""),
    ("0501234567890123", None, False, "unknown", ""),
    ("+9665012345678901", None, False, "unknown", ""),
    ("05O1234567", None, False, "unknown", ""),
    ("0501234567 / 0551234567", None, False, "unknown", ""),
    ("5" * 70, None, False, "unknown", ""),
]


def test_the_table_covers_at_least_forty_inputs():
    assert len(CASES) >= 40
    assert len({raw for raw, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("raw", "e164", "valid", "kind", "region"), CASES)
def test_normalize_phone(raw, e164, valid, kind, region):
    result = normalize_phone(raw)
    assert result.raw == raw
    assert result.e164 == e164
    assert result.usable is (e164 is not None)
    assert result.valid is valid
    assert result.type == kind
    assert result.region == region


def test_every_saudi_form_of_one_number_gives_one_e164():
    forms = [raw for raw, e164, *_ in CASES if e164 == MOBILE_E164]
    assert len(forms) >= 20
    assert {normalize_phone(raw).e164 for raw in forms} == {MOBILE_E164}


def test_non_string_input_is_unusable_not_an_error():
    assert normalize_phone(None).usable is False  # type: ignore[arg-type]



def _written_forms(national: str) -> list[str]:
    return ["0" + national, national, "+966" + national, f"+966 {national[:2]} {national[2:5]} {national[5:]}",
            f"0{national[:2]}-{national[2:5]}-{national[5:]}", "00966" + national,
            ("0" + national).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))]


def test_fast_path_for_plain_saudi_mobiles_agrees_with_the_full_parser():
    # The fast path skips phonenumbers.parse for 05XXXXXXXX-shaped input; it must give exactly
    # what the full parser gives, for every second digit and many numbers of each.
    from ingestion.normalize import _parse_full, _prepare, _saudi_mobile_fast

    rng = random.Random(20261129)
    nationals = [f"5{second}{rng.randrange(10_000_000):07d}" for second in range(10) for _ in range(300)]
    # Every four-digit prefix too, so each boundary of the mobile ranges (5790-5798, 57x, ...) is hit.
    nationals += [f"5{prefix:03d}{rng.randrange(100_000):05d}" for prefix in range(1000)]
    fast_taken = 0
    for national in nationals:
        for raw in _written_forms(national):
            text = _prepare(raw)
            fast = _saudi_mobile_fast(raw, text)
            full = _parse_full(raw, text)
            if fast is not None:
                fast_taken += 1
                assert fast == full, raw
            assert normalize_phone.__wrapped__(raw) == full, raw
    # The fast path is really used for the common shapes (most second digits are mobile ranges).
    assert fast_taken > len(nationals) * 4


def test_saudi_type_matches_phonenumbers_number_type_for_every_prefix():
    # The precompiled type check must decide like phonenumbers for all kinds of Saudi numbers,
    # not only mobiles: every 3-digit prefix of 8 to 10 digits, with a few random tails each.
    from ingestion.normalize import _saudi_type

    rng = random.Random(7)
    checked = set()
    for length in (8, 9, 10):
        for prefix in range(1000):
            for _ in range(3):
                national = f"{prefix:03d}{rng.randrange(10 ** (length - 3)):0{length - 3}d}"
                if national[0] == "0":
                    continue
                number = phonenumbers.PhoneNumber(country_code=966, national_number=int(national))
                assert _saudi_type(national) == phonenumbers.number_type(number), national
                checked.add(_saudi_type(national))
    # Mobile, fixed line, toll free, premium rate, shared cost and unknown are all among them.
    assert len(checked) >= 6
