"""Realistic Saudi leads for the bench, with an exact share of repeated phone numbers.

Each stream (one per client process and run) makes phone numbers that never collide with another
stream's fresh numbers, so the duplicate share the server sees is the one asked for: a repeat
reuses a number this stream already sent (in the same report or an earlier one), often written in
another format, as the same shop listed twice on a maps site would be.
"""

from __future__ import annotations

import random
from typing import Any

# Saudi mobile numbers are 5X XXX XXXX; these second digits are valid for every following digit.
_MOBILE_PREFIXES = "0345689"
_STREAM_SIZE = 100_000            # default: fresh numbers a stream may make before it would reach the next
_SPACE = len(_MOBILE_PREFIXES) * 10_000_000   # second digit x 7 free digits
_MULTIPLIER = 48_271              # coprime with 2, 5 and 7: i -> (A*i + B) mod _SPACE is a permutation
_OFFSET = 12_345_678

_AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

CITIES = [("الرياض", "Riyadh"), ("جدة", "Jeddah"), ("مكة المكرمة", "Makkah"), ("المدينة المنورة", "Madinah"),
          ("الدمام", "Dammam"), ("الخبر", "Khobar"), ("الطائف", "Taif"), ("تبوك", "Tabuk"),
          ("بريدة", "Buraydah"), ("أبها", "Abha"), ("حائل", "Hail"), ("نجران", "Najran")]
CATEGORIES = [("مطعم", "Restaurant"), ("صيدلية", "Pharmacy"), ("مغسلة سيارات", "Car wash"),
              ("صالون", "Salon"), ("مقهى", "Cafe"), ("بقالة", "Grocery"), ("ورشة", "Workshop"),
              ("مكتب عقار", "Real estate office"), ("مخبز", "Bakery"), ("عيادة أسنان", "Dental clinic")]
NAME_PARTS_AR = ["النخبة", "الريان", "السلام", "الأمل", "الواحة", "النور", "الفيصل", "البركة", "الراية",
                 "الصفوة", "المملكة", "الخليج", "الياسمين", "الديرة"]
NAME_PARTS_EN = ["Al Nukhba", "Al Rayan", "Al Salam", "Al Amal", "Oasis", "Al Noor", "Al Faisal",
                 "Baraka", "Golden", "Elite", "Kingdom", "Gulf", "Jasmine", "Diyar"]


def _formats(nsn: str, rng: random.Random) -> str:
    """One of the ways a Saudi mobile number shows up on a listing (mostly 05XXXXXXXX)."""
    roll = rng.random()
    if roll < 0.60:
        return "0" + nsn
    if roll < 0.75:
        return "+966" + nsn
    if roll < 0.83:
        return f"+966 {nsn[:2]} {nsn[2:5]} {nsn[5:]}"
    if roll < 0.89:
        return "00966" + nsn
    if roll < 0.94:
        return f"0{nsn[:2]}-{nsn[2:5]}-{nsn[5:]}"
    return ("0" + nsn).translate(_AR_DIGITS)


class LeadStream:
    """Leads for one client: `repeat_share` of them reuse a phone number sent before."""

    def __init__(self, stream_id: int, *, repeat_share: float = 0.30, invalid_share: float = 0.0,
                 seed: int | None = None, stream_size: int = _STREAM_SIZE) -> None:
        self.stream_id = stream_id
        self.repeat_share = repeat_share
        self.invalid_share = invalid_share
        self.rng = random.Random(seed if seed is not None else stream_id * 7_777 + 11)
        self._next = stream_id * stream_size
        self._limit = self._next + stream_size
        if self._limit > _SPACE:
            raise ValueError("stream id too large for the number space")
        self._seen: list[tuple[str, int, int, int]] = []   # (nsn, city, category, name)
        self.made = 0
        self.repeats = 0

    def _fresh_nsn(self) -> str:
        if self._next >= self._limit:
            raise RuntimeError("lead stream exhausted; give it a larger stream_size")
        i = self._next
        self._next += 1
        x = (i * _MULTIPLIER + _OFFSET) % _SPACE
        return f"5{_MOBILE_PREFIXES[x // 10_000_000]}{x % 10_000_000:07d}"

    def lead(self) -> dict[str, Any]:
        rng = self.rng
        self.made += 1
        if self._seen and rng.random() < self.repeat_share:
            nsn, city, category, name = self._seen[rng.randrange(len(self._seen))]
            self.repeats += 1
        else:
            nsn = self._fresh_nsn()
            city, category = rng.randrange(len(CITIES)), rng.randrange(len(CATEGORIES))
            name = rng.randrange(len(NAME_PARTS_AR))
            self._seen.append((nsn, city, category, name))
            if len(self._seen) > 50_000:
                del self._seen[: len(self._seen) // 2]
        phone = _formats(nsn, rng)
        if self.invalid_share and rng.random() < self.invalid_share:
            phone = "05" + str(rng.randrange(100, 999))   # too short: stored flagged, never dropped
        arabic = rng.random() < 0.5
        city_ar, city_en = CITIES[city]
        cat_ar, cat_en = CATEGORIES[category]
        if arabic:
            display = f"{cat_ar} {NAME_PARTS_AR[name]}"
            city_name, category_name = city_ar, cat_ar
        else:
            display = f"{NAME_PARTS_EN[name]} {cat_en}"
            city_name, category_name = city_en, cat_en
        external = f"bench-{nsn}"
        return {
            "name": display,
            "phone": phone,
            "city": city_name,
            "category": category_name,
            "address": f"{rng.randrange(1, 9999)} King Fahd Rd, {city_en}",
            "source_url": f"https://maps.example.sa/place/{external}",
            "external_id": external,
            "lat": round(24.0 + rng.random() * 4, 6),
            "lng": round(39.0 + rng.random() * 8, 6),
            "rating": round(3 + rng.random() * 2, 1),
        }

    def leads(self, count: int) -> list[dict[str, Any]]:
        return [self.lead() for _ in range(count)]
