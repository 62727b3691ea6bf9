"""One city, one name (ingestion/cities.py): every spelling of a Saudi city, Arabic or Latin, gets one
key and display name at ingestion; the reported spelling stays in city_raw; the admin filter lists
the city once and filters on the key; old rows are backfilled by the migration."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ingestion.cities import city_canonical
from ingestion.models import Lead
from tests.ingestion.conftest import ingest, lead, saudi_mobiles

CHANGELIST = "/admin/ingestion/lead/"
RIYADH = ["الرياض", "الرِّيَاض", "رياض", "Riyadh", "RIYADH", "  riyadh ", "Ar-Riyadh", "Al Riyadh", "ar riyadh"]
JEDDAH = ["جدة", "جدّة", "جده", "Jeddah", "JIDDAH", "Jedda"]
MAKKAH = ["مكة المكرمة", "مكه", "Makkah", "Mecca", "makkah al-mukarramah"]
KHOBAR = ["الخبر", "Al-Khobar", "Al Khobar", "alkhobar", "Khobar"]


@pytest.mark.parametrize(("spellings", "key", "name"), [
    (RIYADH, "riyadh", "Riyadh"), (JEDDAH, "jeddah", "Jeddah"), (MAKKAH, "makkah", "Makkah"),
    (KHOBAR, "khobar", "Khobar"),
])
def test_arabic_and_latin_spellings_of_a_city_meet(spellings, key, name):
    assert {city_canonical(spelling) for spelling in spellings} == {(key, name)}


def test_a_city_not_in_the_table_keeps_its_name_and_a_normalized_key():
    assert city_canonical("  Wadi   Al-Dawasir ") == ("wadi al dawasir", "Wadi Al-Dawasir")
    assert city_canonical("WADI AL DAWASIR").key == "wadi al dawasir"
    assert city_canonical("") == ("", "")


@pytest.mark.django_db
def test_ingestion_stores_the_canonical_city_and_keeps_the_spelling(admin_client):
    spellings = RIYADH + JEDDAH
    ingest([lead(f"Shop {i}", phone, city=city)
            for i, (phone, city) in enumerate(zip(saudi_mobiles(len(spellings)), spellings, strict=True))])
    rows = list(Lead.objects.order_by("id").values_list("city_raw", "city", "city_normalized"))
    assert [raw for raw, _, _ in rows] == spellings
    assert {(city, key) for _, city, key in rows} == {("Riyadh", "riyadh"), ("Jeddah", "jeddah")}

    page = admin_client.get(CHANGELIST)
    city_filter = next(spec for spec in page.context["cl"].filter_specs if spec.parameter_name == "city")
    assert city_filter.lookup_choices == [("riyadh", "Riyadh"), ("jeddah", "Jeddah")]
    for value in ("riyadh", "الرياض", "Ar-Riyadh"):
        assert len(admin_client.get(CHANGELIST, {"city": value}).context["cl"].result_list) == len(RIYADH)


@pytest.mark.django_db
def test_the_city_lookup_adds_no_query_per_lead(django_assert_max_num_queries):
    ingest([lead("warm-up", "0550000001", city="x")])
    cities = (RIYADH + JEDDAH + MAKKAH + KHOBAR) * 5
    phones = saudi_mobiles(len(cities), start=100)
    with django_assert_max_num_queries(12) as few:
        ingest([lead("One", phones[0], city=cities[0])])
    with django_assert_max_num_queries(len(few.captured_queries)):
        ingest([lead(f"S{i}", phone, city=city) for i, (phone, city) in enumerate(zip(phones[1:], cities[1:],
                                                                                       strict=True))])


@pytest.mark.django_db(transaction=True)
def test_the_migration_backfills_existing_leads():
    executor = MigrationExecutor(connection)
    before = [("ingestion", "0005_privacy_requests_receipts_breaches")]
    after = [("ingestion", "0006_lead_city_raw_and_canonical_city")]
    executor.migrate(before)
    old_lead = executor.loader.project_state(before).apps.get_model("ingestion", "Lead")
    for i, city in enumerate(["الرياض", "riyadh", "Jeddah", "Unaizah ", "Somewhere Else"]):
        old_lead.objects.create(name=f"L{i}", city=city, city_normalized=city.lower(), provider="p",
                                worker_id="w", local_day=dt.date.today())
    executor = MigrationExecutor(connection)
    executor.migrate(after)
    rows = list(Lead.objects.order_by("id").values_list("city_raw", "city", "city_normalized"))
    assert rows == [("الرياض", "Riyadh", "riyadh"), ("riyadh", "Riyadh", "riyadh"),
                    ("Jeddah", "Jeddah", "jeddah"), ("Unaizah ", "Unaizah", "unaizah"),
                    ("Somewhere Else", "Somewhere Else", "somewhere else")]
