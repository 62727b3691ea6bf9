"""lead_batch_ingest: every reported lead is counted exactly once, and the tables agree with the counts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import uuid

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.services import EMPTY_RESULT, dedup_scope, lead_batch_ingest
from tests.ingestion.conftest import ingest, lead, saudi_mobiles
from tests.ingestion.days import DAY_AFTER, DAY_BEFORE, RIYADH_MIDNIGHT_UTC

pytestmark = pytest.mark.django_db


def counter_totals() -> dict[str, int]:
    totals = dict.fromkeys(("added", "duplicates", "duplicates_in_batch", "duplicates_existing", "invalid",
                            "suppressed"), 0)
    for counter in IngestCounter.objects.all():
        for key in totals:
            totals[key] += getattr(counter, key)
    return totals


def test_exact_counts_in_batch_and_existing_duplicates_and_invalid():
    first = ingest([lead("A", "0501234567"), lead("B", "+966 50 123 4567"), lead("C", "junk"),
                    lead("D", "0551111111")])
    assert (first.added, first.duplicates, first.duplicates_in_batch, first.duplicates_existing,
            first.invalid) == (2, 1, 1, 0, 1)
    second = ingest([lead("E", "٠٥٠١٢٣٤٥٦٧"), lead("F", "0552222222"), lead("G", "")])
    assert (second.added, second.duplicates, second.duplicates_in_batch, second.duplicates_existing,
            second.invalid) == (1, 1, 0, 1, 1)


def test_the_first_lead_of_a_fingerprint_is_the_one_stored():
    ingest([lead("First", "0501234567"), lead("Second", "+966501234567")])
    stored = Lead.objects.get(phone_e164="+966501234567")
    assert stored.name == "First"
    assert stored.phone_raw == "0501234567"


def test_invalid_leads_are_stored_flagged_and_not_fingerprinted():
    result = ingest([lead("No phone", ""), lead("Junk", "call us"), lead("Short", "12345")])
    assert result.invalid == 3 and result.added == 0
    invalid = Lead.objects.filter(phone_e164__isnull=True)
    assert invalid.count() == 3
    assert set(invalid.values_list("phone_raw", flat=True)) == {"", "call us", "12345"}
    assert not invalid.filter(phone_valid=True).exists()
    assert set(invalid.values_list("phone_type", flat=True)) == {"unknown"}
    assert LeadFingerprint.objects.count() == 0


def test_normalized_keys_fit_their_columns_even_when_nfkc_lengthens_the_text():
    # U+FDFA is one character that NFKC turns into 18; 50 of them are a valid 50-character name.
    result = ingest([lead("ﷺ" * 50, "0501234567", city="ﷺ" * 50)])
    assert result.added == 1
    stored = Lead.objects.get()
    assert stored.name == "ﷺ" * 50
    assert len(stored.name_normalized) == 500 and len(stored.city_normalized) == 200


def test_possible_but_invalid_numbers_are_added_with_valid_false():
    result = ingest([lead("Odd", "0811234567")])
    assert result.added == 1
    stored = Lead.objects.get()
    assert stored.phone_e164 == "+966811234567" and stored.phone_valid is False


def test_lead_fields_and_provenance_are_stored():
    attempt = uuid.uuid4()
    ingest([lead("مَطْعَمُ البَيْك", "0501234567", city="جدّة", category="مطاعم", address="طريق",
                 website="https://example.com", source_url="https://maps.example/1", external_id="e-1",
                 lat=21.5, lng=39.2, rating=4.5, extra={"hours": "9-21", "tags": ["ف", 1]})],
           provider="maps", worker_id="w-7", job_id=42, attempt_id=attempt)
    stored = Lead.objects.get()
    assert (stored.name, stored.name_normalized, stored.city, stored.city_raw, stored.city_normalized) == (
        "مَطْعَمُ البَيْك", "مطعم البيك", "Jeddah", "جدّة", "jeddah")
    assert (stored.phone_e164, stored.phone_valid, stored.phone_type, stored.phone_region) == (
        "+966501234567", True, "mobile", "SA")
    assert (stored.provider, stored.worker_id, stored.job_id, stored.attempt_id) == ("maps", "w-7", 42, attempt)
    assert (stored.lat, stored.lng, stored.rating) == (21.5, 39.2, 4.5)
    assert stored.extra == {"hours": "9-21", "tags": ["ف", 1]}
    assert (stored.website, stored.source_url, stored.external_id, stored.address, stored.category) == (
        "https://example.com", "https://maps.example/1", "e-1", "طريق", "مطاعم")
    assert stored.phone == "0501234567"


def lead_fingerprint(*, scope: str, e164: str) -> str:
    """The fingerprint as docs/SYSTEM_OVERVIEW.md defines it, computed here, not by the server."""
    from django.conf import settings

    key = settings.LEADOPS_FINGERPRINT_KEY.encode()
    return hmac.new(key, f"{scope}|{e164}".encode(), hashlib.sha256).hexdigest()


def test_added_equals_fingerprints_created_and_each_links_its_lead(fixed_key):
    result = ingest([lead(f"Shop {i}", phone) for i, phone in enumerate(saudi_mobiles(30))]
                    + [lead("Again", "0550000003"), lead("Bad", "x")])
    assert result.added == 30 == LeadFingerprint.objects.count()
    for fingerprint in LeadFingerprint.objects.select_related("lead"):
        assert fingerprint.lead is not None
        expected = lead_fingerprint(scope=fingerprint.scope, e164=fingerprint.lead.phone_e164)
        assert fingerprint.fingerprint == expected
        assert len(fingerprint.fingerprint) == 64


def test_deleting_a_lead_unlinks_its_fingerprint_which_keeps_deduplicating():
    # The link has no database constraint (ingest creates both in one statement); the ORM's
    # SET_NULL still unlinks it, and the fingerprint, which holds no phone, still counts repeats.
    ingest([lead("Erased", "0501234567"), lead("Kept", "0559876543")])
    Lead.objects.filter(name="Erased").delete()
    assert Lead.objects.count() == 1
    fingerprints = {fp.lead.name if fp.lead_id else None for fp in LeadFingerprint.objects.select_related("lead")}
    assert fingerprints == {"Kept", None}
    again = ingest([lead("Erased again", "+966 50 123 4567")])
    assert (again.added, again.duplicates_existing) == (0, 1)


def test_fingerprint_is_hmac_of_scope_and_e164(fixed_key):
    import hashlib
    import hmac

    # Noon UTC is 15:00 in Riyadh: the same calendar day in both zones.
    with time_machine.travel(RIYADH_MIDNIGHT_UTC - dt.timedelta(hours=9), tick=False):
        ingest([lead("A", "0501234567")])
    scope = DAY_BEFORE.isoformat()
    expected = hmac.new(b"test-fingerprint-key", f"{scope}|+966501234567".encode(), hashlib.sha256).hexdigest()
    assert LeadFingerprint.objects.get().fingerprint == expected
    assert LeadFingerprint.objects.get().scope == scope


def test_a_simulated_run_counts_every_lead_once_and_counters_agree_with_tables():
    from worker_client.provider import LeadPool, SimulatedProvider

    provider = SimulatedProvider(rng=random.Random(11), pool=LeadPool(), leads_per_job=(20, 80))
    payloads = [{"query": "مطاعم", "city": "الرياض"}, {"query": "pharmacy", "city": "Jeddah"}]
    reported = 0
    totals = dict(EMPTY_RESULT.as_dict())
    for job in range(40):
        leads = provider.scrape(payloads[job % 2])
        reported += len(leads)
        result = ingest(leads, provider=("maps", "yellow")[job % 2], worker_id=f"w-{job % 5}", job_id=job)
        assert result.added + result.duplicates + result.invalid == len(leads)
        assert result.duplicates == result.duplicates_in_batch + result.duplicates_existing
        for key, value in result.as_dict().items():
            totals[key] += value
    assert totals["added"] + totals["duplicates"] + totals["invalid"] == reported
    assert totals["duplicates"] > 0 and totals["invalid"] > 0 and totals["added"] > 0
    assert totals["added"] == LeadFingerprint.objects.count()
    assert totals["added"] == Lead.objects.filter(phone_e164__isnull=False).count()
    assert totals["invalid"] == Lead.objects.filter(phone_e164__isnull=True).count()
    assert counter_totals() == totals
    # Per (provider, worker), the counters agree with the leads stored for them.
    for counter in IngestCounter.objects.values("provider", "worker_id").distinct():
        stored = Lead.objects.filter(**counter)
        sums = IngestCounter.objects.filter(**counter)
        assert sum(c.added for c in sums) == stored.filter(phone_e164__isnull=False).count()
        assert sum(c.invalid for c in sums) == stored.filter(phone_e164__isnull=True).count()


def test_counter_rows_are_hourly_per_provider_and_worker():
    nine_utc = RIYADH_MIDNIGHT_UTC - dt.timedelta(hours=12)  # 09:00 UTC, 12:00 in Riyadh
    base = nine_utc + dt.timedelta(minutes=10)
    ingest([lead("A", "0501111111")], received_at=base)
    ingest([lead("B", "0502222222")], received_at=base + dt.timedelta(minutes=40))
    ingest([lead("C", "0503333333")], received_at=base + dt.timedelta(minutes=55))
    ingest([lead("D", "0504444444")], received_at=base, worker_id="w-2")
    rows = list(IngestCounter.objects.order_by("hour", "worker_id").values_list("hour", "worker_id", "added"))
    assert rows == [
        (nine_utc, "w-1", 2),
        (nine_utc, "w-2", 1),
        (nine_utc + dt.timedelta(hours=1), "w-1", 1),
    ]
    assert set(IngestCounter.objects.values_list("local_day", flat=True)) == {DAY_BEFORE}


def test_empty_batch_does_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert lead_batch_ingest(rows=[], provider="maps", worker_id="w-1") == EMPTY_RESULT
    assert IngestCounter.objects.count() == 0


def test_a_batch_of_only_duplicates_still_counts():
    ingest([lead("A", "0501234567")])
    result = ingest([lead("A", "0501234567"), lead("A", "0501234567")])
    assert (result.added, result.duplicates_in_batch, result.duplicates_existing) == (0, 1, 1)
    assert Lead.objects.count() == 1
    assert counter_totals()["duplicates"] == 2


def test_runs_inside_the_callers_transaction_and_rolls_back_with_it():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        ingest([lead("A", "0501234567")])
        raise Boom
    assert Lead.objects.count() == LeadFingerprint.objects.count() == IngestCounter.objects.count() == 0
    assert ingest([lead("A", "0501234567")]).added == 1


# Per-day scope, across the Riyadh midnight (21:00 UTC), not the UTC one.
BEFORE_MIDNIGHT = RIYADH_MIDNIGHT_UTC - dt.timedelta(minutes=1)  # 23:59 in Riyadh, on DAY_BEFORE
AFTER_MIDNIGHT = RIYADH_MIDNIGHT_UTC + dt.timedelta(minutes=1)  # 00:01 in Riyadh, on DAY_AFTER


def ingest_across_local_midnight(settings, scope: str, later_phone: str):
    """The same lead a minute before and a minute after midnight in Riyadh, with this dedup scope."""
    settings.LEADOPS_DEDUP_SCOPE = scope
    with time_machine.travel(BEFORE_MIDNIGHT, tick=False):
        first = ingest([lead("A", "0501234567")])
    with time_machine.travel(AFTER_MIDNIGHT, tick=False):
        second = ingest([lead("A", later_phone)])
    return first, second


def test_day_scope_same_phone_next_local_day_is_added_again(settings):
    first, second = ingest_across_local_midnight(settings, "day", "+966 50 123 4567")
    assert first.added == 1 and second.added == 1 and second.duplicates == 0
    assert set(LeadFingerprint.objects.values_list("scope", flat=True)) == {DAY_BEFORE.isoformat(),
                                                                             DAY_AFTER.isoformat()}
    assert sorted(Lead.objects.values_list("local_day", flat=True)) == [DAY_BEFORE, DAY_AFTER]
    days = dict(IngestCounter.objects.values_list("local_day", "added"))
    assert days == {DAY_BEFORE: 1, DAY_AFTER: 1}


def test_day_scope_utc_midnight_is_not_a_new_day(settings):
    settings.LEADOPS_DEDUP_SCOPE = "day"
    # 23:59 and 00:01 UTC are both on DAY_AFTER in Riyadh (02:59 and 03:01).
    utc_midnight = RIYADH_MIDNIGHT_UTC + dt.timedelta(hours=3)
    with time_machine.travel(utc_midnight - dt.timedelta(minutes=1), tick=False):
        first = ingest([lead("A", "0501234567")])
    with time_machine.travel(utc_midnight + dt.timedelta(minutes=1), tick=False):
        second = ingest([lead("A", "0501234567")])
    assert first.added == 1 and second.duplicates_existing == 1


def test_all_scope_same_phone_next_local_day_is_a_duplicate(settings):
    first, second = ingest_across_local_midnight(settings, "all", "0501234567")
    assert first.added == 1
    assert second.added == 0 and second.duplicates_existing == 1
    assert list(LeadFingerprint.objects.values_list("scope", flat=True)) == ["all"]


def test_dedup_scope_follows_the_setting(settings):
    settings.LEADOPS_DEDUP_SCOPE = "day"
    assert dedup_scope(received_at=AFTER_MIDNIGHT) == DAY_AFTER.isoformat()
    settings.LEADOPS_DEDUP_SCOPE = "all"
    assert dedup_scope(received_at=AFTER_MIDNIGHT) == "all"
    settings.LEADOPS_DEDUP_SCOPE = "week"
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        dedup_scope(received_at=AFTER_MIDNIGHT)


# The number of queries does not grow with the batch.
# The suppression check is one query more than the insert path needs (docs/PRIVACY.md).
QUERY_BUDGET = 5


def rows_for(count: int, *, start: int) -> list[dict]:
    phones = saudi_mobiles(count, start=start)
    leads = [lead(f"Shop {i}", phone, city="الرياض", extra={"i": i}) for i, phone in enumerate(phones)]
    # Some repeats and some junk, so every path of the service runs.
    return leads + leads[: count // 5] + [lead("Bad", "x")] * (count // 10)


@pytest.mark.parametrize("count", [10, 500])
def test_query_count_is_constant(django_assert_max_num_queries, count):
    ingest(rows_for(3, start=0))  # existing fingerprints, so the "already stored" path runs too
    with django_assert_max_num_queries(QUERY_BUDGET):
        result = ingest(rows_for(count, start=1))
    assert result.added == count - 2 and result.duplicates_existing == 2


def test_ten_and_five_hundred_rows_cost_the_same_queries():
    counts = []
    for start, count in ((0, 10), (10_000, 500), (20_000, 1000)):
        with CaptureQueriesContext(connection) as captured:
            ingest(rows_for(count, start=start))
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1] == counts[2] <= QUERY_BUDGET
