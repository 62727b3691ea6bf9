import pytest

from alerts.matchers import MatcherError, matcher_parse, matches


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("worker=w-1", {"name": "worker", "op": "=", "value": "w-1"}),
        ("worker!=w-1", {"name": "worker", "op": "!=", "value": "w-1"}),
        ('provider=~"maps|yelp"', {"name": "provider", "op": "=~", "value": "maps|yelp"}),
        ("severity!~warn.*", {"name": "severity", "op": "!~", "value": "warn.*"}),
        ("note=a=b", {"name": "note", "op": "=", "value": "a=b"}),
    ],
)
def test_matcher_parse_reads_the_four_operators(text, expected):
    assert matcher_parse(text) == expected


@pytest.mark.parametrize("text", ["", "=x", "9name=x", "name", "name=~(", "na me=x"])
def test_matcher_parse_refuses_bad_matchers(text):
    with pytest.raises(MatcherError):
        matcher_parse(text)


def test_regex_matchers_are_anchored_like_alertmanager():
    labels = {"worker": "w-10", "alertname": "heartbeat_missing"}
    assert matches([matcher_parse("worker=~w-1.*")], labels)
    assert not matches([matcher_parse("worker=~w-1")], labels)  # a full match, not a search
    assert matches([matcher_parse("worker!~w-2.*")], labels)


def test_a_missing_label_matches_as_empty():
    assert matches([matcher_parse("provider=")], {"worker": "w"})
    assert not matches([matcher_parse("provider!=")], {"worker": "w"})
    assert matches([], {"anything": "x"})


def test_every_matcher_must_hold():
    labels = {"alertname": "error_rate", "provider": "maps"}
    assert matches([matcher_parse("alertname=error_rate"), matcher_parse("provider=maps")], labels)
    assert not matches([matcher_parse("alertname=error_rate"), matcher_parse("provider=yelp")], labels)
