"""The simulated provider: realistic Saudi leads, repeats, unusable numbers, failures.

phonenumbers (a dependency of the portal, not of worker_client) is the judge here: it is what the
portal's ingestion parses the numbers with (docs/SYSTEM_OVERVIEW.md, "Semantics").
"""

from __future__ import annotations

import random
import re
import threading

import phonenumbers
import pytest

from worker_client.provider import (
    ARABIC_INDIC_DIGITS,
    PERSIAN_DIGITS,
    SAUDI_LAT_RANGE,
    SAUDI_LNG_RANGE,
    LeadPool,
    ScrapeCancelled,
    ScrapeError,
    SimulatedProvider,
    failure_screenshot,
)
from worker_client.tests.phones import portal_e164

LEAD_FIELDS = {"name", "phone", "city", "category", "address", "website", "source_url", "external_id", "lat",
               "lng", "rating", "extra"}
ARABIC_LETTERS = re.compile(r"[\u0621-\u064A]")
PAYLOADS = [{"query": "مطاعم", "city": "الرياض"}, {"query": "pharmacy", "city": "Jeddah"},
            {"query": "car repair", "city": "Dammam"}, {"query": "cafe", "city": "مكة"},
            {"query": "anything", "city": "Unknown Town"}]


def scrape_many(provider: SimulatedProvider, jobs: int) -> list[dict]:
    return [lead for i in range(jobs) for lead in provider.scrape(PAYLOADS[i % len(PAYLOADS)])]


@pytest.fixture
def leads() -> list[dict]:
    provider = SimulatedProvider(rng=random.Random(7), pool=LeadPool(), leads_per_job=(20, 60))
    return scrape_many(provider, 80)


def test_about_thirty_percent_of_leads_repeat_a_number_already_seen(leads):
    numbers = [portal_e164(lead["phone"]) for lead in leads]
    usable = [n for n in numbers if n]
    repeats = len(usable) - len(set(usable))

    assert 0.25 <= repeats / len(leads) <= 0.35


def test_repeats_cross_jobs_and_workers_through_the_shared_pool():
    pool = LeadPool()
    first = SimulatedProvider(rng=random.Random(1), pool=pool, repeat_rate=0.0, invalid_rate=0.0)
    second = SimulatedProvider(rng=random.Random(2), pool=pool, repeat_rate=1.0, invalid_rate=0.0)
    seen = {portal_e164(lead["phone"]) for lead in scrape_many(first, 5)}

    repeated = {portal_e164(lead["phone"]) for lead in scrape_many(second, 5)}

    assert repeated <= seen


def test_a_few_numbers_are_unusable(leads):
    unusable = [lead for lead in leads if portal_e164(lead["phone"]) is None]

    assert 0.01 <= len(unusable) / len(leads) <= 0.06
    assert all(lead["extra"]["phone_format"] == "unusable" for lead in unusable)
    assert all(lead["phone"] for lead in leads)  # unusable, never empty or missing


def test_every_usable_number_is_a_valid_saudi_number(leads):
    for lead in leads:
        if lead["extra"]["phone_format"] == "unusable":
            continue
        number = phonenumbers.parse(lead["phone"], "SA")
        assert phonenumbers.is_valid_number(number), lead["phone"]
        assert phonenumbers.region_code_for_number(number) == "SA"


def test_phones_come_in_the_common_formats_including_arabic_indic_and_persian_digits(leads):
    phones = [lead["phone"] for lead in leads]
    formats = {lead["extra"]["phone_format"] for lead in leads}

    assert any(set(p) & set(ARABIC_INDIC_DIGITS) for p in phones)
    assert any(set(p) & set(PERSIAN_DIGITS) for p in phones)
    assert any(set(p) & set(ARABIC_INDIC_DIGITS) and set(p) & set("0123456789") for p in phones)  # mixed
    assert any(p.startswith("+966 5") for p in phones)
    assert any(p.startswith("00966") for p in phones)
    assert any(p.startswith("+9660") for p in phones)
    assert any(p.startswith("tel:+966") for p in phones)
    assert any(re.fullmatch(r"05\d-\d{3}-\d{4}", p) for p in phones)
    assert any(re.fullmatch(r"\(01\d\) \d{3} \d{4}", p) for p in phones)
    assert any(re.fullmatch(r"9200 \d{5}", p) for p in phones)
    assert any(re.fullmatch(r"800 \d{3} \d{4}", p) for p in phones)
    assert {"local", "intl_no_plus", "arabic_indic", "persian", "mixed"} <= formats


def test_names_are_arabic_and_english(leads):
    arabic = [lead for lead in leads if ARABIC_LETTERS.search(lead["name"])]
    english = [lead for lead in leads if not ARABIC_LETTERS.search(lead["name"])]

    assert len(arabic) > len(leads) * 0.3
    assert len(english) > len(leads) * 0.2


def test_leads_fit_the_protocol_shape(leads):
    for lead in leads:
        assert set(lead) <= LEAD_FIELDS
        assert lead["name"] and lead["phone"]
        assert SAUDI_LAT_RANGE[0] <= lead["lat"] <= SAUDI_LAT_RANGE[1]
        assert SAUDI_LNG_RANGE[0] <= lead["lng"] <= SAUDI_LNG_RANGE[1]
        assert lead.get("rating") is None or 1.0 <= lead["rating"] <= 5.0
        assert lead["source_url"].startswith("https://")
    assert any("website" in lead for lead in leads)
    assert any("website" not in lead for lead in leads)


def test_the_city_and_query_of_the_payload_are_used():
    provider = SimulatedProvider(rng=random.Random(3), pool=LeadPool(), repeat_rate=0.0)

    leads = provider.scrape({"query": "صيدلية", "city": "جدة"})

    assert {lead["city"] for lead in leads} <= {"Jeddah", "جدة"}
    assert {lead["category"] for lead in leads} <= {"Pharmacy", "صيدلية"}


def test_failure_rate_raises_a_scrape_error():
    always = SimulatedProvider(rng=random.Random(1), failure_rate=1.0, pool=LeadPool())
    never = SimulatedProvider(rng=random.Random(1), failure_rate=0.0, pool=LeadPool())

    with pytest.raises(ScrapeError) as caught:
        always.scrape(PAYLOADS[0])
    assert caught.value.code and caught.value.message
    assert all(never.scrape(PAYLOADS[0]) for _ in range(50))


def test_failure_rate_is_roughly_the_configured_share():
    provider = SimulatedProvider(rng=random.Random(5), failure_rate=0.2, pool=LeadPool(), leads_per_job=1)
    failures = 0
    for _ in range(1000):
        try:
            provider.scrape(PAYLOADS[0])
        except ScrapeError:
            failures += 1

    assert 150 <= failures <= 250


def test_a_seeded_provider_is_reproducible():
    def run(seed: int) -> list[dict]:
        return scrape_many(SimulatedProvider(rng=random.Random(seed), pool=LeadPool()), 5)

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_a_cancelled_scrape_stops_waiting():
    provider = SimulatedProvider(rng=random.Random(1), pool=LeadPool(), delay_s=30.0)
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(ScrapeCancelled):
        provider.scrape(PAYLOADS[0], cancel=cancel)


def test_rates_outside_zero_to_one_are_refused():
    with pytest.raises(ValueError):
        SimulatedProvider(failure_rate=1.5)


def _png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Walk a PNG with the standard library: check every chunk's CRC, return (width, height, raw rows)."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(png):
        (length,) = struct.unpack(">I", png[position:position + 4])
        kind, data = png[position + 4:position + 8], png[position + 8:position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length:position + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc
        chunks[kind] = chunks.get(kind, b"") + data
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2) and b"IEND" in chunks
    return width, height, zlib.decompress(chunks[b"IDAT"])


def test_a_failed_scrape_carries_a_small_png_screenshot():
    provider = SimulatedProvider(rng=random.Random(3), failure_rate=1.0)
    with pytest.raises(ScrapeError) as failure:
        provider.scrape({"query": "cafe", "city": "Riyadh"})
    screenshot = failure.value.screenshot
    assert screenshot is not None and len(screenshot) < 16 * 1024
    width, height, raw = _png_pixels(screenshot)
    assert (width, height) == (320, 200) and len(raw) == height * (1 + 3 * width)


def test_failure_screenshots_differ_by_failure():
    assert failure_screenshot("captcha_required") != failure_screenshot("blocked")
