"""The fast JSON parser answers every body exactly as DRF's strict JSONParser does."""

from __future__ import annotations

import io

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.parsers import FastJSONParser

BODIES = [
    b'{"leads": [{"name": "\xd9\x85\xd8\xb7\xd8\xb9\xd9\x85", "phone": "0501234567"}]}',
    b'{"n": 123456789012345678901234567890}',       # beyond 64 bits: orjson refuses, DRF parses
    b'{"s": "\\ud800"}',                             # lone surrogate escape
    b'{"a": 1, "a": 2}',                            # duplicate key: the last wins
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b'{"s": "tab\there"}',                          # raw control character
    b'\xef\xbb\xbf{"a": 1}',                        # UTF-8 byte order mark
    b'{"a": "\xff"}',                               # invalid UTF-8
    b'{"a": 1',
    b"[]",
    b'"text"',
    b"-0.0",
    b"[-9223372036854775809, 9223372036854775807, 18446744073709551616]",
    b"1e400",
    b"[" * 2000 + b"]" * 2000,
]


def _outcome(parser, body: bytes):
    try:
        return ("data", parser.parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"}))
    except ParseError:
        return ("parse_error", None)
    except RecursionError:
        return ("recursion", None)


@pytest.mark.parametrize("body", BODIES)
def test_fast_parser_gives_the_same_answer_as_drf(body):
    fast = _outcome(FastJSONParser(), body)
    strict = _outcome(JSONParser(), body)
    assert fast == strict or (fast[0] == strict[0] == "data" and repr(fast[1]) == repr(strict[1]))
