"""Telemetry: counters -> today, dup ratio over 24 h, 7-day trend by local day, per provider and worker."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model

from ingestion.models import IngestCounter, Lead
from ingestion.selectors import counters_today, dup_ratio, ingestion_telemetry
from tests.ingestion.conftest import ingest, lead, saudi_mobiles
from tests.ingestion.days import DAY_AFTER, RIYADH_MIDNIGHT_UTC

pytestmark = pytest.mark.django_db

URL = "/api/v1/telemetry/ingestion"
# "Now" for these tests: 10:30 in Riyadh on the fourth local day of the history (day_offset 4).
NOW = RIYADH_MIDNIGHT_UTC + dt.timedelta(days=3, hours=10, minutes=30)
TODAY = DAY_AFTER + dt.timedelta(days=3)


def day(offset: int) -> str:
    """The ISO local day `offset` days from the tests' today (0 is today, -1 yesterday)."""
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def day_batch(*, day_offset: int, added: int, dup: int, invalid: int, provider: str = "maps",
              worker_id: str = "w-1", start: int = 0, hour: int = 9) -> None:
    received = RIYADH_MIDNIGHT_UTC + dt.timedelta(days=day_offset - 1, hours=hour)
    phones = saudi_mobiles(added, start=start)
    rows = [lead(f"S{i}", phone) for i, phone in enumerate(phones)]
    rows += [lead("dup", phones[i % added]) for i in range(dup)]
    rows += [lead("bad", "junk")] * invalid
    ingest(rows, provider=provider, worker_id=worker_id, received_at=received)


@pytest.fixture
def history():
    # Four local days, day_offset 1 (three days before today) .. 4 (today).
    day_batch(day_offset=1, added=10, dup=2, invalid=1, start=0)
    day_batch(day_offset=3, added=8, dup=8, invalid=0, start=100, provider="yellow", worker_id="w-2")
    # Yesterday 23:00 local: inside the last 24 hours, but not today.
    day_batch(day_offset=3, added=4, dup=4, invalid=2, start=200, hour=23)
    # Today, two providers and workers.
    day_batch(day_offset=4, added=6, dup=3, invalid=1, start=300, hour=8)
    day_batch(day_offset=4, added=5, dup=0, invalid=2, start=400, hour=9, provider="yellow", worker_id="w-2")


def test_today_trend_and_ratio(history):
    data = ingestion_telemetry(now=NOW)
    today = TODAY
    assert data["today"]["day"] == day(0)
    assert (data["today"]["added"], data["today"]["duplicates"], data["today"]["invalid"]) == (11, 3, 3)
    # Today's counts agree with the lead table (duplicates are only counted, never stored).
    assert Lead.objects.filter(local_day=today, phone_e164__isnull=False).count() == 11
    assert Lead.objects.filter(local_day=today, phone_e164__isnull=True).count() == 3
    # Last 24 h: yesterday 23:00 plus today.
    assert (data["last_24h"]["added"], data["last_24h"]["duplicates"]) == (15, 7)
    assert data["dup_ratio_24h"] == pytest.approx(7 / 22)
    trend = data["trend"]
    assert [row["day"] for row in trend] == [day(offset) for offset in range(-6, 1)]
    by_day = {row["day"]: row for row in trend}
    assert by_day[day(-3)] == {"day": day(-3), "added": 10, "duplicates": 2, "invalid": 1,
                               "dup_ratio": pytest.approx(2 / 12)}
    assert (by_day[day(-1)]["added"], by_day[day(-1)]["duplicates"]) == (12, 12)
    assert by_day[day(-2)] == {"day": day(-2), "added": 0, "duplicates": 0, "invalid": 0,
                               "dup_ratio": None}
    assert sum(row["added"] for row in trend) == Lead.objects.filter(phone_e164__isnull=False).count()


def test_per_provider_and_worker(history):
    data = ingestion_telemetry(now=NOW)
    providers = {row["provider"]: row for row in data["by_provider"]}
    assert providers["maps"]["today"]["added"] == 6
    assert providers["maps"]["last_24h"]["added"] == 10 and providers["maps"]["last_24h"]["duplicates"] == 7
    assert providers["maps"]["dup_ratio_24h"] == pytest.approx(7 / 17)
    assert providers["yellow"]["today"]["added"] == 5 and providers["yellow"]["dup_ratio_24h"] == 0.0
    workers = {row["worker_id"]: row for row in data["by_worker"]}
    assert set(workers) == {"w-1", "w-2"}
    assert workers["w-2"]["today"]["invalid"] == 2


def test_no_data_gives_zero_counts_and_no_ratio():
    data = ingestion_telemetry(now=NOW)
    assert data["dup_ratio_24h"] is None
    assert data["today"]["added"] == 0
    assert len(data["trend"]) == 7 and all(day["dup_ratio"] is None for day in data["trend"])
    assert data["by_provider"] == data["by_worker"] == []


def test_dup_ratio_definition():
    assert dup_ratio(added=3, duplicates=1) == 0.25
    assert dup_ratio(added=0, duplicates=0) is None


def test_telemetry_reads_only_the_counter_table(history, django_assert_max_num_queries):
    with django_assert_max_num_queries(3) as captured:
        ingestion_telemetry(now=NOW)
    for query in captured.captured_queries:
        assert "ingestion_lead" not in query["sql"]


def test_counters_today(history):
    data = counters_today(now=NOW)
    assert data["day"] == day(0)
    assert data["totals"]["added"] == 11 and data["totals"]["invalid"] == 3 and data["totals"]["duplicates"] == 3
    assert {row["provider"]: row["added"] for row in data["by_provider"]} == {"maps": 6, "yellow": 5}
    assert {row["worker_id"]: row["invalid"] for row in data["by_worker"]} == {"w-1": 1, "w-2": 2}


# The staff endpoint.

def test_staff_gets_the_numbers(admin_client, history):
    with time_machine.travel(NOW, tick=False):
        response = admin_client.get(URL)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["today"]["added"] == Lead.objects.filter(local_day=TODAY,
                                                         phone_e164__isnull=False).count()
    assert body["dup_ratio_24h"] == pytest.approx(7 / 22)
    assert len(body["trend"]) == 7
    assert sum(row["today"]["added"] for row in body["by_worker"]) == body["today"]["added"]
    assert sum(IngestCounter.objects.values_list("added", flat=True)) == sum(d["added"] for d in body["trend"])


def test_anonymous_is_refused(client):
    response = client.get(URL)
    assert response.status_code in (401, 403)
    assert "code" in response.json()["error"]


def test_non_staff_is_forbidden(client):
    user = get_user_model().objects.create_user(username="viewer", password="pw-123456789")
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_post_is_not_allowed(admin_client):
    assert admin_client.post(URL, {}, content_type="application/json").status_code == 405
