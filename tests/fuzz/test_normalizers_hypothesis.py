"""hypothesis on the normalizers of ingestion/normalize.py: no text breaks them, a second pass changes
nothing, and every usable phone is E.164 (Saudi numbers as +966...), in any digits and separators.

`LEADOPS_FUZZ_EXAMPLES` examples per property (default 300); the number run is printed.
"""

from __future__ import annotations

import os
import re

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.digits import ARABIC_INDIC_DIGITS, PERSIAN_DIGITS
from ingestion.normalize import normalize_city, normalize_name, normalize_phone

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("LEADOPS_FUZZ_EXAMPLES", "300"))
# E.164: a plus, a country code, at most 15 digits in all (some countries have very short numbers).
E164 = re.compile(r"^\+[1-9][0-9]{2,14}$")
SAUDI_VALID = re.compile(r"^\+966[1-9][0-9]{7,9}$")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text a scraper may hand over: any Unicode, and phone-shaped text (digits of three scripts, the
# separators and prefixes people write) so the interesting paths are reached often.
DIGITS = "0123456789" + ARABIC_INDIC_DIGITS + PERSIAN_DIGITS
phone_like = st.text(alphabet=st.sampled_from(list(DIGITS + " -.()+\u200f\u00a0\u066c")), max_size=24)
prefixed = st.tuples(st.sampled_from(["", "+966", "00966", "966", "0", "tel:", "+9660", "+"]),
                     phone_like).map("".join)
any_phone_text = st.one_of(st.text(max_size=70), phone_like, prefixed)
ARABIC_TEXT = st.text(alphabet=st.characters(min_codepoint=0x0600, max_codepoint=0x06FF), max_size=30)
any_text = st.one_of(st.text(max_size=80), ARABIC_TEXT)


class Counted:
    """Counts the examples a property ran, for the printed total."""

    def __init__(self, record_property, name: str) -> None:
        self.n = 0
        self.record_property = record_property
        self.name = name

    def __call__(self) -> None:
        self.n += 1

    def report(self) -> None:
        self.record_property("fuzz_examples", self.n)
        self.record_property("fuzz_report", f"hypothesis {self.name}: {self.n} examples")


@pytest.fixture
def counted(request, record_property):
    counter = Counted(record_property, request.node.name)
    yield counter
    counter.report()


def test_phone_normalization_never_raises_and_answers_e164_or_nothing(counted):
    @FUZZ
    @given(any_phone_text)
    def check(raw):
        counted()
        result = normalize_phone(raw)
        assert result.raw == raw
        if result.usable:
            assert E164.match(result.e164), (raw, result)
            if result.valid and result.region == "SA":
                assert SAUDI_VALID.match(result.e164), (raw, result)
        else:
            assert result.e164 is None and not result.valid

    check()


def test_normalizing_a_phone_twice_changes_nothing(counted):
    @FUZZ
    @given(any_phone_text)
    def check(raw):
        counted()
        first = normalize_phone(raw)
        if first.usable:
            again = normalize_phone(first.e164)
            assert (again.e164, again.valid, again.type, again.region) == (
                first.e164, first.valid, first.type, first.region), (raw, first, again)

    check()


@st.composite
def saudi_mobile_written_any_way(draw):
    national = "5" + draw(st.text(alphabet="0123456789", min_size=8, max_size=8))
    prefix = draw(st.sampled_from(["0", "+966", "00966", "966", "+966 ", "+966 (0) ", "tel:+966-"]))
    digits = draw(st.sampled_from(["0123456789", ARABIC_INDIC_DIGITS, PERSIAN_DIGITS]))
    written = "".join(digits[int(ch)] if ch.isascii() and ch.isdigit() else ch for ch in prefix)
    separator = draw(st.sampled_from(["", " ", "-", "\u200f"]))
    body = "".join(digits[int(ch)] for ch in national)
    grouped = separator.join([body[:2], body[2:5], body[5:]])
    return national, written + grouped


def test_a_saudi_mobile_in_any_digits_and_form_is_its_plus_966_number(counted):
    @FUZZ
    @given(saudi_mobile_written_any_way())
    def check(number):
        counted()
        national, written = number
        result = normalize_phone(written)
        expected = phonenumbers.parse("+966" + national)
        assert result.usable and result.e164 == "+966" + national, (written, result)
        assert result.valid == phonenumbers.is_valid_number(expected), (written, result)

    check()


def test_text_normalization_never_raises_and_is_idempotent(counted):
    @FUZZ
    @given(any_text)
    def check(text):
        counted()
        for normalize in (normalize_name, normalize_city):
            once = normalize(text)
            assert isinstance(once, str)
            assert normalize(once) == once, (text, once, normalize(once))

    check()
