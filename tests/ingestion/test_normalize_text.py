"""Names and cities: NFKC, case-fold, collapsed spaces, Arabic marks and letter forms unified."""

from __future__ import annotations

import pytest

from ingestion.normalize import normalize_city, normalize_name


@pytest.mark.parametrize(("raw", "expected"), [
    ("مَطْعَمُ البَيْك", "مطعم البيك"),  # tashkeel
    ("الــريــاض", "الرياض"),  # tatweel
    ("أحمد", "احمد"),  # alef with hamza above
    ("إبراهيم", "ابراهيم"),  # alef with hamza below
    ("آل سعود", "ال سعود"),  # alef with madda
    ("ٱلشيخ", "الشيخ"),  # alef wasla
    ("مكة المكرمة", "مكه المكرمه"),  # ta marbuta -> ha
    ("مستشفى", "مستشفي"),  # alef maqsura -> ya
    ("رحمٰن", "رحمن"),  # superscript alef
    ("  Al   Baik\tRestaurant \n", "al baik restaurant"),  # spaces collapsed, case folded
    ("STRASSE Straße", "strasse strasse"),  # case-fold, not lower()
    ("Ｃａｆé", "café"),  # NFKC: fullwidth letters
    ("cafe\u0301", "café"),  # NFKC composes the accent
    ("\u200fمطعم\u200e", "مطعم"),  # direction marks
    ("", ""),
])
def test_normalize_name(raw, expected):
    assert normalize_name(raw) == expected


def test_spellings_of_one_name_meet():
    spellings = ["مَكَّةُ المُكَرَّمَة", "مكة المكرمة", "مكه المكرمه", "مـكـة   المكرمة"]
    assert len({normalize_name(text) for text in spellings}) == 1


@pytest.mark.parametrize(("raw", "expected"), [
    ("الرياض", "الرياض"),
    ("الرِّيَاض", "الرياض"),
    ("RIYADH", "riyadh"),
    ("جدّة", "جده"),
    ("المدينة المنوّرة", "المدينه المنوره"),
    ("أبها", "ابها"),
])
def test_normalize_city(raw, expected):
    assert normalize_city(raw) == expected
