"""A simulated scraping provider that makes realistic Saudi business leads.

It stands in for the Node + Chromium scrapers of the real fleet, so that the portal can be shown,
tested and benchmarked with data that exercises what the portal must get right: Arabic and English
names, every phone format Saudi listings use (Arabic-Indic and Persian digits included), repeats of
businesses already seen by other jobs and workers, a few unusable numbers, and scrapes that fail.
"""

from __future__ import annotations

import random
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"

# The Kingdom's bounding box; every simulated coordinate stays inside it.
SAUDI_LAT_RANGE = (16.3, 32.2)
SAUDI_LNG_RANGE = (34.6, 55.6)


class ScrapeError(Exception):
    """A simulated scrape failure (captcha, block, timeout...): the job is reported `failed`.

    `screenshot` is a PNG of what the browser showed, when there is one; the worker uploads it as
    the attempt's evidence before it reports the failure.
    """

    def __init__(self, code: str, message: str, *, screenshot: bytes | None = None,
                 log_tail: str | None = None) -> None:
        self.code = code
        self.message = message
        self.screenshot = screenshot
        # The last lines the scrape logged; the report carries them as `log_tail` (masked by the portal).
        self.log_tail = log_tail
        super().__init__(f"{code}: {message}")


def failure_log_tail(code: str, message: str, payload: Mapping[str, Any]) -> str:
    """The few log lines a real scrape writes before it fails: what it opened and what it saw."""
    query, city = str(payload.get("query", "")), str(payload.get("city", ""))
    return "\n".join([
        f"open search query={query!r} city={city!r}",
        "page loaded: 200 in 1.8 s",
        f"scrape failed: {code}: {message}",
    ])[-16 * 1024:]


class ScrapeCancelled(Exception):
    """The worker is shutting down; the scrape stopped before it finished."""


@dataclass(frozen=True)
class City:
    en: str
    ar: str
    lat: float
    lng: float
    area_code: str  # the two digits after the trunk 0 of a landline: "11" is Riyadh
    districts: tuple[tuple[str, str], ...]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Category:
    key: str
    en: str
    ar: str
    keywords: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City("Riyadh", "الرياض", 24.7136, 46.6753, "11",
         (("Olaya", "العليا"), ("Al Malaz", "الملز"), ("Al Sulimaniyah", "السليمانية"),
          ("Al Yasmin", "الياسمين"), ("Al Naseem", "النسيم"), ("Hittin", "حطين"))),
    City("Jeddah", "جدة", 21.4858, 39.1925, "12",
         (("Al Rawdah", "الروضة"), ("Al Safa", "الصفا"), ("Al Hamra", "الحمراء"), ("Al Balad", "البلد"),
          ("Al Zahra", "الزهراء")), ("jiddah", "jedda")),
    City("Mecca", "مكة المكرمة", 21.3891, 39.8579, "12",
         (("Al Aziziyah", "العزيزية"), ("Al Shawqiyah", "الشوقية"), ("Al Awali", "العوالي")),
         ("makkah", "makka", "مكة")),
    City("Medina", "المدينة المنورة", 24.5247, 39.5692, "14",
         (("Quba", "قباء"), ("Al Aziziyah", "العزيزية"), ("Al Khalidiyah", "الخالدية")),
         ("madinah", "al madinah", "المدينة")),
    City("Dammam", "الدمام", 26.4207, 50.0888, "13",
         (("Al Faisaliyah", "الفيصلية"), ("Al Shati", "الشاطئ"), ("Al Mazruiyah", "المزروعية"))),
    City("Khobar", "الخبر", 26.2172, 50.1971, "13",
         (("Al Aqrabiyah", "العقربية"), ("Al Olaya", "العليا")), ("al khobar",)),
    City("Taif", "الطائف", 21.2854, 40.4183, "12", (("Shihar", "شهار"), ("Al Hawiyah", "الحوية"))),
    City("Tabuk", "تبوك", 28.3835, 36.5662, "14", (("Al Muruj", "المروج"), ("Al Faisaliyah", "الفيصلية"))),
    City("Buraidah", "بريدة", 26.3260, 43.9750, "16", (("Al Safra", "الصفراء"), ("Al Iskan", "الإسكان"))),
    City("Abha", "أبها", 18.2164, 42.5053, "17", (("Al Manhal", "المنهل"), ("Al Khalidiyah", "الخالدية"))),
    City("Hail", "حائل", 27.5114, 41.7208, "16", (("Al Aziziyah", "العزيزية"), ("Al Muntazah", "المنتزه"))),
    City("Jazan", "جازان", 16.8892, 42.5511, "17", (("Al Rawdah", "الروضة"), ("Al Shati", "الشاطئ")),
         ("jizan",)),
    City("Al Ahsa", "الأحساء", 25.3833, 49.5860, "13", (("Al Mubarraz", "المبرز"), ("Al Hofuf", "الهفوف")),
         ("hofuf", "al hasa")),
    City("Khamis Mushait", "خميس مشيط", 18.3061, 42.7296, "17", (("Al Dhabab", "الضباب"),)),
    City("Yanbu", "ينبع", 24.0890, 38.0637, "14", (("Al Sumairi", "السميري"),)),
    City("Jubail", "الجبيل", 27.0046, 49.6460, "13", (("Al Fanateer", "الفناتير"),)),
)

CATEGORIES: tuple[Category, ...] = (
    Category("restaurant", "Restaurant", "مطعم", ("restaurant", "food", "مطعم", "مطاعم")),
    Category("cafe", "Cafe", "مقهى", ("cafe", "coffee", "مقهى", "كافيه", "قهوة")),
    Category("pharmacy", "Pharmacy", "صيدلية", ("pharmacy", "صيدلية", "صيدليات")),
    Category("clinic", "Medical Clinic", "مجمع طبي", ("clinic", "dentist", "doctor", "عيادة", "مجمع طبي")),
    Category("car_repair", "Auto Workshop", "ورشة سيارات", ("car repair", "workshop", "garage", "ورشة")),
    Category("laundry", "Laundry", "مغسلة ملابس", ("laundry", "مغسلة")),
    Category("salon", "Salon", "صالون", ("salon", "barber", "صالون", "حلاق")),
    Category("grocery", "Supermarket", "تموينات", ("grocery", "supermarket", "بقالة", "تموينات")),
    Category("bakery", "Bakery", "مخبز", ("bakery", "مخبز", "مخابز")),
    Category("real_estate", "Real Estate Office", "مكتب عقار", ("real estate", "عقار", "عقارات")),
    Category("contracting", "Contracting Est.", "مؤسسة مقاولات", ("contractor", "contracting", "مقاولات")),
    Category("mobile_shop", "Mobile Store", "محل جوالات", ("mobile", "phones", "جوالات")),
    Category("furniture", "Furniture Showroom", "معرض أثاث", ("furniture", "أثاث")),
    Category("hotel", "Hotel", "فندق", ("hotel", "فندق", "فنادق")),
)

NAME_STEMS: tuple[tuple[str, str], ...] = (
    ("Al Nakheel", "النخيل"), ("Al Waha", "الواحة"), ("Al Salam", "السلام"), ("Al Rayyan", "الريان"),
    ("Al Fajr", "الفجر"), ("Al Badr", "البدر"), ("Al Amal", "الأمل"), ("Al Nada", "الندى"),
    ("Al Yasmeen", "الياسمين"), ("Al Khaleej", "الخليج"), ("Al Safwa", "الصفوة"), ("Al Ruwad", "الرواد"),
    ("Al Diyafa", "الضيافة"), ("Al Bustan", "البستان"), ("Al Marjan", "المرجان"), ("Al Qimma", "القمة"),
    ("Al Nour", "النور"), ("Al Majd", "المجد"), ("Al Tamayoz", "التميز"), ("Dar Al Shifa", "دار الشفاء"),
    ("Nujoom Al Sharq", "نجوم الشرق"), ("Rawasi", "رواسي"), ("Lamasat", "لمسات"), ("Sama", "سما"),
)

FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("Al Otaibi", "العتيبي"), ("Al Qahtani", "القحطاني"), ("Al Harbi", "الحربي"), ("Al Ghamdi", "الغامدي"),
    ("Al Zahrani", "الزهراني"), ("Al Dosari", "الدوسري"), ("Al Shammari", "الشمري"),
    ("Al Mutairi", "المطيري"), ("Al Subaie", "السبيعي"), ("Al Anazi", "العنزي"),
)

STREETS: tuple[tuple[str, str], ...] = (
    ("King Fahd Road", "طريق الملك فهد"), ("King Abdulaziz Road", "طريق الملك عبدالعزيز"),
    ("Prince Sultan Street", "شارع الأمير سلطان"), ("Tahlia Street", "شارع التحلية"),
    ("Omar Bin Al Khattab Street", "شارع عمر بن الخطاب"), ("Prince Mohammed Bin Abdulaziz Road",
                                                        "طريق الأمير محمد بن عبدالعزيز"),
)

SCRAPE_FAILURES: tuple[tuple[str, str], ...] = (
    ("captcha_required", "The listing page asked for a captcha."),
    ("blocked", "The source answered 403 to the browser."),
    ("timeout", "The results list did not load within 30 s."),
    ("layout_changed", "The results selector matched nothing."),
    ("browser_crashed", "The browser page crashed while scrolling."),
)

# Numbers that listings really carry but that are no usable phone: too short, placeholders, junk.
UNUSABLE_PHONES: tuple[str, ...] = (
    "05012", "050123", "12345", "966", "+966", "٠٥٠", "N/A", "غير متوفر", "call us", "—", "050-***-****",
    "0000", "tel:", "0",
)

# Landline numbers: after the area code only some third digits are allocated (the same ranges
# libphonenumber knows), so a "valid" simulated landline really is valid.
_LANDLINE_THIRD_DIGITS = {"11": "23456789", "12": "245678", "13": "35678", "14": "34568", "16": "2345",
                          "17": "23567"}
_MOBILE_SECOND_DIGITS = "0345689"


@dataclass(frozen=True)
class Business:
    """One simulated place; repeats of it are the duplicates the portal must catch."""

    external_id: str
    kind: str  # mobile | landline | unified | tollfree
    national_number: str  # digits after +966, e.g. "501234567"
    stem: tuple[str, str]
    category: Category
    city: City
    district: tuple[str, str]
    street: tuple[str, str]
    website: str | None
    lat: float
    lng: float
    rating: float | None
    reviews: int


class LeadPool:
    """Businesses already emitted, shared by providers so repeats cross jobs and workers."""

    def __init__(self, max_size: int = 20_000) -> None:
        self.max_size = max_size
        self._items: list[Business] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, business: Business, rng: random.Random) -> None:
        with self._lock:
            if len(self._items) < self.max_size:
                self._items.append(business)
            else:
                self._items[rng.randrange(self.max_size)] = business

    def sample(self, rng: random.Random) -> Business | None:
        with self._lock:
            return rng.choice(self._items) if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SHARED_POOL = LeadPool()


# --- phone formats -------------------------------------------------------------------------------


def to_digits(text: str, digits: str) -> str:
    """Replace ASCII digits by another script's digits (Arabic-Indic, Persian)."""
    return text.translate(str.maketrans("0123456789", digits))


def _mixed_digits(text: str, rng: random.Random) -> str:
    # Copied-and-edited listings mix keyboards: some digits Arabic-Indic, the rest ASCII.
    return "".join(ARABIC_INDIC_DIGITS[int(ch)] if ch.isdigit() and rng.random() < 0.5 else ch for ch in text)


def _saudi_formats(nsn: str) -> dict[str, str]:
    """How listings print any Saudi number of two-digit prefix (mobile 5x, landline area code)."""
    a, b, c = nsn[:2], nsn[2:5], nsn[5:]
    return {"spaced": f"0{a} {b} {c}", "local": f"0{nsn}", "intl": f"+966 {a} {b} {c}", "00": f"00966{nsn}",
            "tel_uri": f"tel:+966{nsn}", "arabic_indic": to_digits(f"0{nsn}", ARABIC_INDIC_DIGITS)}


def _mobile_formats(nsn: str) -> dict[str, str]:
    a, b, c = nsn[:2], nsn[2:5], nsn[5:]
    saudi = _saudi_formats(nsn)
    return {
        "local": saudi["local"], "local_dashed": f"0{a}-{b}-{c}", "local_spaced": saudi["spaced"],
        "intl_spaced": saudi["intl"], "intl_compact": f"+966{nsn}", "intl_00": saudi["00"],
        "intl_no_plus": f"966{nsn}", "intl_trunk": f"+9660{nsn}", "tel_uri": saudi["tel_uri"],
        "intl_dashed": f"+966-{a}-{b}-{c}", "arabic_indic": saudi["arabic_indic"],
        "arabic_indic_intl": "+" + to_digits(f"966{nsn}", ARABIC_INDIC_DIGITS),
        "arabic_indic_spaced": to_digits(f"0{a} {b} {c}", ARABIC_INDIC_DIGITS),
        "persian": to_digits(f"0{nsn}", PERSIAN_DIGITS),
    }


_MOBILE_WEIGHTS = {
    "local": 18, "local_dashed": 6, "local_spaced": 8, "intl_spaced": 13, "intl_compact": 10, "intl_00": 7,
    "intl_no_plus": 6, "intl_trunk": 4, "tel_uri": 4, "intl_dashed": 3, "arabic_indic": 8,
    "arabic_indic_intl": 3, "arabic_indic_spaced": 2, "persian": 3, "mixed": 5,
}


def _landline_formats(nsn: str) -> dict[str, str]:
    area, b, c = nsn[:2], nsn[2:5], nsn[5:]
    return {"landline_paren": f"(0{area}) {b} {c}",
            **{f"landline_{name}": text for name, text in _saudi_formats(nsn).items()}}


def _unified_formats(nsn: str) -> dict[str, str]:
    return {"unified_spaced": f"{nsn[:4]} {nsn[4:]}", "unified": nsn,
            "unified_dashed": f"{nsn[:4]}-{nsn[4:]}"}


def _tollfree_formats(nsn: str) -> dict[str, str]:
    return {"tollfree_spaced": f"{nsn[:3]} {nsn[3:6]} {nsn[6:]}", "tollfree": nsn,
            "tollfree_dashed": f"{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}"}


_OTHER_FORMATS: dict[str, Callable[[str], dict[str, str]]] = {
    "landline": _landline_formats, "unified": _unified_formats, "tollfree": _tollfree_formats,
}


def format_phone(kind: str, nsn: str, rng: random.Random) -> tuple[str, str]:
    """Render a national number the way some listing would print it; return (text, format name)."""
    if kind == "mobile":
        names = list(_MOBILE_WEIGHTS)
        name = rng.choices(names, weights=[_MOBILE_WEIGHTS[n] for n in names])[0]
        if name == "mixed":
            return _mixed_digits(rng.choice([f"0{nsn}", f"+966 {nsn[:2]} {nsn[2:5]} {nsn[5:]}"]), rng), name
        return _mobile_formats(nsn)[name], name
    formats = _OTHER_FORMATS[kind](nsn)
    name = rng.choice(list(formats))
    return formats[name], name


def _random_digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


def new_national_number(rng: random.Random, city: City) -> tuple[str, str]:
    """A fresh (kind, national number) in allocated Saudi ranges: mostly mobiles, some landlines."""
    kind = rng.choices(["mobile", "landline", "unified", "tollfree"], weights=[70, 20, 6, 4])[0]
    if kind == "mobile":
        return kind, "5" + rng.choice(_MOBILE_SECOND_DIGITS) + _random_digits(rng, 7)
    if kind == "landline":
        area = city.area_code
        return kind, area + rng.choice(_LANDLINE_THIRD_DIGITS[area]) + _random_digits(rng, 6)
    if kind == "unified":
        return kind, "9200" + _random_digits(rng, 5)
    return kind, "800" + _random_digits(rng, 7)


# --- the screenshot of a failure ------------------------------------------------------------------

# A banner colour per failure, so screenshots of different failures look different at a glance.
_BANNER_COLOURS = {"captcha_required": (245, 124, 0), "blocked": (198, 40, 40), "timeout": (117, 117, 117),
                   "layout_changed": (106, 27, 154), "browser_crashed": (33, 33, 33)}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def failure_screenshot(code: str, *, width: int = 320, height: int = 200) -> bytes:
    """A small PNG standing in for a browser screenshot of a failed scrape (no browser needed).

    A page with a coloured banner (the failure's colour) and grey "text" lines, encoded with the
    standard library alone: the reference worker has no image dependency.
    """
    banner = _BANNER_COLOURS.get(code, (55, 71, 79))
    rows = []
    for y in range(height):
        if y < height // 5:
            pixel = bytes(banner)
            row = pixel * width
        elif (y - height // 5) % 18 in range(6, 12):
            # A "line of text" that stops at a different length on every line.
            length = width * (40 + (y * 37) % 50) // 100
            row = bytes((158, 158, 158)) * length + bytes((255, 255, 255)) * (width - length)
        else:
            row = bytes((255, 255, 255)) * width
        rows.append(b"\x00" + row)  # filter type 0 (None) for every scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + _png_chunk(b"IEND", b""))


# --- the provider --------------------------------------------------------------------------------


def find_city(text: str | None) -> City | None:
    """The known city a payload names, in English or Arabic, or None."""
    if not text:
        return None
    wanted = " ".join(str(text).lower().replace("-", " ").split())
    for city in CITIES:
        names = {city.en.lower(), city.ar, *city.aliases}
        if wanted in names or wanted.removeprefix("al ") in names:
            return city
    return None


def find_category(query: str | None) -> Category | None:
    """The category a search query is about, by keyword, or None."""
    if not query:
        return None
    lowered = str(query).lower()
    for category in CATEGORIES:
        if any(keyword in lowered for keyword in category.keywords):
            return category
    return None


class SimulatedProvider:
    """Makes the leads of one job payload `{query, city}` as a scraper would have found them."""

    def __init__(
        self, *, rng: random.Random | None = None, repeat_rate: float = 0.30, invalid_rate: float = 0.03,
        failure_rate: float = 0.0, leads_per_job: int | tuple[int, int] = (20, 60),
        delay_s: float | tuple[float, float] = 0.0, pool: LeadPool | None = None,
    ) -> None:
        for name, rate in (("repeat_rate", repeat_rate), ("invalid_rate", invalid_rate),
                           ("failure_rate", failure_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        self.rng = rng or random.Random()
        self.repeat_rate = repeat_rate
        self.invalid_rate = invalid_rate
        self.failure_rate = failure_rate
        self.leads_per_job = leads_per_job
        self.delay_s = delay_s
        self.pool = SHARED_POOL if pool is None else pool
        # One lock around generation keeps a seeded run reproducible when a worker scrapes several
        # jobs in parallel threads; generating is quick, the simulated delay happens outside it.
        self._lock = threading.Lock()

    def scrape(self, payload: Mapping[str, Any], *, cancel: threading.Event | None = None,
               sleep: Callable[[float], Any] = time.sleep) -> list[dict[str, Any]]:
        """Return the leads of a job, or raise ScrapeError (or ScrapeCancelled on shutdown)."""
        with self._lock:
            delay = self._pick(self.delay_s)
            fails = self.rng.random() < self.failure_rate
        if delay > 0:
            if cancel is not None:
                if cancel.wait(delay):
                    raise ScrapeCancelled()
            else:
                sleep(delay)
        if fails:
            with self._lock:
                code, message = self.rng.choice(SCRAPE_FAILURES)
            raise ScrapeError(code, message, screenshot=failure_screenshot(code),
                              log_tail=failure_log_tail(code, message, payload))
        with self._lock:
            return self._leads(payload)

    def _count(self) -> int:
        if isinstance(self.leads_per_job, int):
            return self.leads_per_job
        return self.rng.randint(*self.leads_per_job)

    def _pick(self, value: float | tuple[float, float]) -> float:
        if isinstance(value, tuple):
            return self.rng.uniform(*value)
        return float(value)

    def _leads(self, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
        city = find_city(payload.get("city"))
        category = find_category(payload.get("query"))
        count = self._count()
        leads = []
        for _ in range(count):
            roll = self.rng.random()
            if roll < self.invalid_rate:
                business = self._business(city, category)
                phone = self.rng.choice(UNUSABLE_PHONES)
                leads.append(self._render(business, phone=phone, phone_format="unusable"))
                continue
            repeated = self.pool.sample(self.rng) if roll < self.invalid_rate + self.repeat_rate else None
            business = repeated or self._business(city, category)
            if repeated is None:
                self.pool.add(business, self.rng)
            phone, phone_format = format_phone(business.kind, business.national_number, self.rng)
            leads.append(self._render(business, phone=phone, phone_format=phone_format))
        return leads

    def _business(self, city: City | None, category: Category | None) -> Business:
        rng = self.rng
        city = city or rng.choice(CITIES)
        kind, nsn = new_national_number(rng, city)
        category = category or rng.choice(CATEGORIES)
        stem = rng.choice(NAME_STEMS + FAMILY_NAMES)
        website = None
        if rng.random() < 0.35:
            slug = f"{stem[0]}-{category.key}".lower().replace(" ", "").replace("_", "-")
            website = rng.choice([f"https://{slug}.com.sa", f"https://www.{slug}.sa", f"http://{slug}.com"])
        lat = min(max(city.lat + rng.gauss(0, 0.04), SAUDI_LAT_RANGE[0]), SAUDI_LAT_RANGE[1])
        lng = min(max(city.lng + rng.gauss(0, 0.04), SAUDI_LNG_RANGE[0]), SAUDI_LNG_RANGE[1])
        rating = round(min(5.0, max(1.0, rng.gauss(4.1, 0.5))), 1) if rng.random() < 0.85 else None
        return Business(
            external_id=f"sim-{rng.getrandbits(64):016x}", kind=kind, national_number=nsn, stem=stem,
            category=category, city=city, district=rng.choice(city.districts), street=rng.choice(STREETS),
            website=website, lat=round(lat, 6), lng=round(lng, 6), rating=rating,
            reviews=int(rng.paretovariate(1.2) * 5),
        )

    def _render(self, business: Business, *, phone: str, phone_format: str) -> dict[str, Any]:
        """One listing of a business, in Arabic, English or both, as a lead of the protocol."""
        rng = self.rng
        language = rng.choices(["ar", "en", "en_ar"], weights=[50, 40, 10])[0]
        city, category = business.city, business.category
        district, street = business.district, business.street
        name_ar = f"{category.ar} {business.stem[1]}"
        name_en = f"{business.stem[0]} {category.en}"
        if rng.random() < 0.2:
            name_ar, name_en = f"{name_ar} - فرع {district[1]}", f"{name_en} - {district[0]} Branch"
        if language == "ar":
            name, city_name, category_name = name_ar, city.ar, category.ar
            address = f"{street[1]}، حي {district[1]}، {city.ar}"
        else:
            name = name_en if language == "en" else f"{name_ar} | {name_en}"
            city_name, category_name = city.en, category.en
            address = f"{street[0]}, {district[0]}, {city.en} {rng.randint(11000, 34999)}"
        lead: dict[str, Any] = {
            "name": name, "phone": phone, "city": city_name, "category": category_name, "address": address,
            "source_url": f"https://maps.example.com/place/{business.external_id}?hl={language[:2]}",
            "external_id": business.external_id, "lat": business.lat, "lng": business.lng,
            "extra": {"simulated": True, "phone_format": phone_format, "reviews": business.reviews},
        }
        if business.website:
            lead["website"] = business.website
        if business.rating is not None:
            lead["rating"] = business.rating
        return lead
