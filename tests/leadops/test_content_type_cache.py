"""Under daphne, Twisted's Content-Type parse is cached (leadops/servers.py; docs/PERFORMANCE.md,
"The heartbeat, round two"): same answers as the uncached parse, each distinct value parsed once."""

from __future__ import annotations

import pytest

SAMPLES = [b"application/json", b"application/json; charset=utf-8", b"Application/JSON",
           b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded", b"", b"text/plain;;;",
           b"\xff\xfe nonsense"]


def test_the_cached_parse_answers_what_twisted_answers(monkeypatch):
    http = pytest.importorskip("twisted.web.http")
    from leadops.servers import cache_content_type_parse

    original = http._parseContentType
    monkeypatch.setattr(http, "_parseContentType", original.__wrapped__
                        if hasattr(original, "cache_info") else original)
    expected = [http._parseContentType(sample) for sample in SAMPLES]
    cache_content_type_parse()
    cached = http._parseContentType
    assert hasattr(cached, "cache_info")
    assert [cached(sample) for sample in SAMPLES] == expected
    assert [cached(sample) for sample in SAMPLES] == expected
    assert cached.cache_info().hits == len(SAMPLES)
    cache_content_type_parse()  # a second call wraps nothing again
    assert http._parseContentType is cached
