"""The lead validator of reports: fast, hand-written, errors keyed `leads[i].field`."""

from __future__ import annotations

import pytest

from ingestion.schema import LeadInput, LeadValidationError, parse_lead_rows


def errors_of(raw, max_leads=1000):
    with pytest.raises(LeadValidationError) as info:
        parse_lead_rows(raw, max_leads=max_leads)
    return info.value.fields


def test_a_full_lead_is_typed_and_unknown_keys_are_ignored():
    leads = parse_lead_rows([{
        "name": "مطعم", "phone": "0501234567", "city": "الرياض", "category": "مطاعم", "address": "طريق",
        "website": "https://example.com", "source_url": "https://maps.example/1", "external_id": "ext-1",
        "lat": 24, "lng": 46.7, "rating": 5, "extra": {"hours": "9-5"}, "unknown": object(),
    }], max_leads=10)
    assert leads == [LeadInput(
        name="مطعم", phone="0501234567", city="الرياض", category="مطاعم", address="طريق",
        website="https://example.com", source_url="https://maps.example/1", external_id="ext-1",
        lat=24.0, lng=46.7, rating=5.0, extra={"hours": "9-5"},
    )]


def test_optional_fields_may_be_absent_or_null():
    leads = parse_lead_rows([{"name": "", "phone": "", "city": None, "lat": None, "extra": None}], max_leads=1)
    assert leads == [LeadInput(name="", phone="")]


def test_an_empty_or_junk_phone_is_not_a_validation_error():
    assert len(parse_lead_rows([{"name": "a", "phone": ""}, {"name": "b", "phone": "n/a"}], max_leads=5)) == 2


def test_an_empty_list_is_fine():
    assert parse_lead_rows([], max_leads=5) == []


BAD_ROWS = [
    ("many", "leads"),
    ({"name": "a"}, "leads"),
    (["a lead"], "leads[0]"),
    ([{"phone": "0501234567"}], "leads[0].name"),
    ([{"name": "a"}], "leads[0].phone"),
    ([{"name": 5, "phone": "0501234567"}], "leads[0].name"),
    ([{"name": "a", "phone": 501234567}], "leads[0].phone"),
    ([{"name": "a\x00b", "phone": "1"}], "leads[0].name"),
    ([{"name": "\ud800", "phone": "1"}], "leads[0].name"),
    ([{"name": "a", "phone": "05\udc00"}], "leads[0].phone"),
    ([{"name": "a" * 501, "phone": "1"}], "leads[0].name"),
    ([{"name": "a", "phone": "1" * 101}], "leads[0].phone"),
    ([{"name": "a", "phone": "1", "city": 3}], "leads[0].city"),
    ([{"name": "a", "phone": "1", "website": "x" * 2049}], "leads[0].website"),
    ([{"name": "a", "phone": "1", "lat": 91}], "leads[0].lat"),
    ([{"name": "a", "phone": "1", "lng": -181}], "leads[0].lng"),
    ([{"name": "a", "phone": "1", "rating": 5.5}], "leads[0].rating"),
    ([{"name": "a", "phone": "1", "rating": True}], "leads[0].rating"),
    ([{"name": "a", "phone": "1", "lat": "24.7"}], "leads[0].lat"),
    ([{"name": "a", "phone": "1", "lat": float("nan")}], "leads[0].lat"),
    ([{"name": "a", "phone": "1", "extra": []}], "leads[0].extra"),
    ([{"name": "a", "phone": "1", "extra": {"k": "x" * 9000}}], "leads[0].extra"),
    ([{"name": "a", "phone": "1", "extra": {"k": "a\x00"}}], "leads[0].extra"),
    ([{"name": "a", "phone": "1", "extra": {"k": [float("inf")]}}], "leads[0].extra"),
    ([{"name": "a", "phone": "1", "extra": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {"k": {}}}}}}}}}}}],
     "leads[0].extra"),
]


@pytest.mark.parametrize(("raw", "field"), BAD_ROWS)
def test_bad_rows_name_the_field(raw, field):
    assert field in errors_of(raw)


def test_every_bad_row_is_reported_with_its_index():
    fields = errors_of([{"name": "ok", "phone": "1"}, {"name": 1, "phone": "1"}, {"name": "ok", "phone": "1"},
                        {"name": "x", "phone": None}])
    assert set(fields) == {"leads[1].name", "leads[3].phone"}
    assert all(isinstance(messages, list) and messages for messages in fields.values())


def test_more_than_max_leads_is_an_error():
    assert "leads" in errors_of([{"name": "a", "phone": "1"}] * 6, max_leads=5)


def test_the_error_list_stays_bounded():
    assert len(errors_of([{"name": 1, "phone": 1}] * 1000)) <= 50


GOOD_ROWS = [
    {"name": "a", "phone": ""},
    {"name": "a" * 500, "phone": "1" * 100, "city": "c" * 200, "external_id": "e" * 255},
    {"name": "مطعم", "phone": "٠٥٠١٢٣٤٥٦٧", "lat": 90, "lng": -180, "rating": 0},
    {"name": "a", "phone": "1", "lat": -90.0, "lng": 180.0, "rating": 5.0, "extra": {}},
    {"name": "a", "phone": "1", "extra": {"tags": ["x", 1, 2.5, None, True], "n": {"m": "ف"}}},
    {"name": "a", "phone": "1", "city": None, "lat": None, "extra": None, "unknown": [1]},
]


@pytest.mark.parametrize("row", GOOD_ROWS + [raw[0] for raw, _ in BAD_ROWS if isinstance(raw, list)
                                             and raw and isinstance(raw[0], dict)])
def test_the_fast_check_accepts_and_refuses_exactly_like_the_full_check(row):
    # parse_lead_rows tries the fast check first and only asks the full one to name the problems:
    # both must agree on every row, and a clean row must come out the same from either.
    from ingestion.schema import _clean_row, _parse_row

    errors: dict[str, list[str]] = {}
    full = _parse_row(row, "leads[0]", errors)
    fast = _clean_row(row)
    assert (fast is None) == bool(errors)
    assert fast == full


def test_a_string_subclass_takes_the_full_check_and_is_accepted():
    class Text(str):
        pass

    (lead,) = parse_lead_rows([{"name": Text("a"), "phone": "1"}], max_leads=5)
    assert lead.name == "a"
