"""The suppression list: a listed number is counted `suppressed`, nothing of it is stored."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from core.audit import Actor
from core.models import StaffAction
from ingestion.models import IngestCounter, Lead, LeadFingerprint, SuppressedPhone
from ingestion.privacy import suppression_add, suppression_remove
from tests.ingestion.conftest import ingest, lead

pytestmark = pytest.mark.django_db

ACTOR = Actor.command("test")


def test_entry_is_the_keyed_hash_of_the_e164_number_never_the_number(fixed_key):
    entry = suppression_add(phone="٠٥٠ ١٢٣ ٤٥٦٧", reason="opt-out", actor=ACTOR)
    expected = hmac.new(fixed_key.encode(), b"+966501234567", hashlib.sha256).hexdigest()
    assert entry.digest == expected
    assert entry.phone_masked == "+9665****4567"
    values = list(SuppressedPhone.objects.values_list("digest", "phone_masked", "reason", "created_by"))
    assert "501234567" not in repr(values)


def test_listed_number_in_any_spelling_is_counted_suppressed_and_not_stored(fixed_key):
    suppression_add(phone="+966 50 123 4567", reason="opt-out", actor=ACTOR)
    result = ingest([lead("A", "0501234567"), lead("B", "00966501234567"), lead("C", "٠٥٠١٢٣٤٥٦٧"),
                     lead("D", "0551111111"), lead("E", "junk")])
    assert (result.added, result.duplicates, result.invalid, result.suppressed) == (1, 0, 1, 3)
    assert result.total == 5
    assert not Lead.objects.filter(phone_e164="+966501234567").exists()
    assert Lead.objects.count() == 2 and LeadFingerprint.objects.count() == 1
    counter = IngestCounter.objects.get()
    assert (counter.added, counter.invalid, counter.suppressed) == (1, 1, 3)


def test_removed_number_is_stored_again_and_both_changes_are_audited(fixed_key):
    suppression_add(phone="0501234567", reason="opt-out", actor=ACTOR)
    assert suppression_remove(phone="+966501234567", actor=ACTOR) is True
    assert suppression_remove(phone="+966501234567", actor=ACTOR) is False
    assert ingest([lead("A", "0501234567")]).added == 1
    actions = list(StaffAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["suppression.add", "suppression.remove", "suppression.remove"]
    for row in StaffAction.objects.all():
        assert "501234567" not in repr((row.detail, row.object_ids, row.changes))
        assert row.detail["phone_masked"] == "+9665****4567"


def test_the_suppression_check_is_one_query_for_the_whole_batch(fixed_key, django_assert_max_num_queries):
    suppression_add(phone="0501234567", reason="opt-out", actor=ACTOR)
    phones = [f"055{i:07d}" for i in range(300)] + ["0501234567"] * 5
    with django_assert_max_num_queries(5):
        result = ingest([lead(f"S{i}", phone) for i, phone in enumerate(phones)])
    assert (result.added, result.suppressed) == (300, 5)
