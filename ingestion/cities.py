"""One city, one name: the canonical key and display name of a reported city (docs/PRIVACY.md keeps
the raw form: `Lead.city_raw`).

Workers report a city as the page they scraped wrote it: "الرياض", "Riyadh", "RIYADH", "Ar-Riyadh",
"Al Riyadh". Ingestion maps every spelling of a known Saudi city to one key ("riyadh") and one
display name ("Riyadh"), so the admin's city filter lists a city once and filters on every spelling.
A city not in the table keeps its own normalized text as key and its trimmed text as name.

The lookup runs for every lead: a cached function and a dict, no query.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from ingestion.normalize import normalize_city

# key, display name, other spellings (Latin transliterations and Arabic). Case, whitespace, hyphens,
# Arabic marks and letter forms, and a leading article (al-, ar-, as-, ad-, at-, az-, ash-, el-,
# "ال") are unified before the lookup, so only genuinely different spellings are listed.
_SAUDI_CITIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("riyadh", "Riyadh", ("riyad", "riad", "الرياض", "رياض")),
    ("jeddah", "Jeddah", ("jiddah", "jedda", "jidda", "jidah", "jeda", "جدة", "جده")),
    ("makkah", "Makkah", ("mecca", "makka", "makkah al mukarramah", "mecca al mukarramah",
                          "مكة", "مكة المكرمة", "مكه")),
    ("madinah", "Madinah", ("medina", "madina", "al madinah al munawwarah", "medinah",
                            "المدينة", "المدينة المنورة", "المدينه المنوره")),
    ("dammam", "Dammam", ("damam", "الدمام")),
    ("khobar", "Khobar", ("khubar", "الخبر")),
    ("dhahran", "Dhahran", ("zahran", "الظهران")),
    ("taif", "Taif", ("ta'if", "الطائف", "الطايف")),
    ("tabuk", "Tabuk", ("tabouk", "تبوك")),
    ("buraydah", "Buraydah", ("buraidah", "buraida", "bureidah", "بريدة", "بريده")),
    ("unaizah", "Unaizah", ("unayzah", "onaizah", "عنيزة", "عنيزه")),
    ("abha", "Abha", ("أبها", "ابها")),
    ("khamis-mushait", "Khamis Mushait", ("khamis mushayt", "خميس مشيط")),
    ("hail", "Hail", ("ha'il", "hayil", "حائل", "حايل")),
    ("najran", "Najran", ("نجران",)),
    ("jazan", "Jazan", ("jizan", "gizan", "جازان", "جيزان")),
    ("ahsa", "Al-Ahsa", ("hasa", "hassa", "al hasa", "الأحساء", "الاحساء")),
    ("hofuf", "Hofuf", ("hufuf", "الهفوف")),
    ("jubail", "Jubail", ("jubayl", "الجبيل")),
    ("yanbu", "Yanbu", ("yanbu al bahr", "ينبع")),
    ("qatif", "Qatif", ("katif", "القطيف")),
    ("kharj", "Al-Kharj", ("الخرج",)),
    ("hafar-al-batin", "Hafar Al-Batin", ("hafr al batin", "hafar albatin", "حفر الباطن")),
    ("arar", "Arar", ("عرعر",)),
    ("sakaka", "Sakaka", ("skaka", "سكاكا")),
    ("baha", "Al-Baha", ("bahah", "الباحة", "الباحه")),
    ("qunfudhah", "Al-Qunfudhah", ("qunfudah", "القنفذة", "القنفذه")),
    ("zulfi", "Az-Zulfi", ("الزلفي",)),
    ("majmaah", "Al-Majma'ah", ("majmaa", "المجمعة", "المجمعه")),
    ("rabigh", "Rabigh", ("رابغ",)),
)

# The Latin article in its assimilated forms, as the first word of a transliteration.
_LATIN_ARTICLES = frozenset({"al", "el", "ar", "as", "ad", "at", "az", "ash", "adh", "an", "ath"})
_SEPARATORS = re.compile(r"[\s\-_'’`ʻ.]+")
_HYPHENS = re.compile(r"[\-_]+")


class City(NamedTuple):
    key: str
    name: str


def _lookup_form(text: str) -> str:
    """The text without case, marks, separators or a leading article: what the table is keyed by."""
    words = [word for word in _SEPARATORS.split(normalize_city(text)) if word]
    if len(words) > 1 and words[0] in _LATIN_ARTICLES:
        words = words[1:]
    if words and words[0].startswith("ال") and len(words[0]) > 3:
        words[0] = words[0][2:]
    return "".join(words)


_BY_SPELLING: dict[str, City] = {
    _lookup_form(spelling): City(key, name)
    for key, name, spellings in _SAUDI_CITIES
    for spelling in (key, name, *spellings)
}


@lru_cache(maxsize=4096)
def city_canonical(raw: str) -> City:
    """Return the key and display name of a reported city ("" for none)."""
    text = " ".join(raw.split())
    if not text:
        return City("", "")
    form = _lookup_form(text)
    # "alkhobar": the article written together with the name.
    known = _BY_SPELLING.get(form) or (_BY_SPELLING.get(form[2:]) if form[:2] in ("al", "el") else None)
    if known is not None:
        return known
    # Unknown: its normalized text is the key, with a hyphen and a space counted as one.
    return City(" ".join(_HYPHENS.sub(" ", normalize_city(text)).split()), text)
