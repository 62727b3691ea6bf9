"""The log guard (tests/log_guard.py) flags what must never be logged and passes masked lines."""

from __future__ import annotations

import logging

import pytest

from core.logging import mask_pii
from tests.log_guard import LeakCatcher, remember_secret

LEAKS = [
    ("phone", "lead +966501234567 stored"),
    ("phone", "lead 0501234567 stored"),
    ("phone", "lead 00966501234567 stored"),
    ("email", "receiver ops.team@example.com failed"),
    ("authorization/signature", "Authorization: LEADOPS-HMAC-SHA256 Signature=" + "ab" * 32),
    ("authorization/signature", "scrape with Bearer abcdefgh12345678"),
]


@pytest.mark.parametrize(("kind", "line"), LEAKS)
def test_a_leak_is_named(kind, line):
    assert LeakCatcher().leak_in(line) == kind


@pytest.mark.parametrize(("kind", "line"), [leak for leak in LEAKS if leak[0] in ("phone", "email")])
def test_the_same_line_masked_by_the_pii_filter_passes(kind, line):
    assert LeakCatcher().leak_in(mask_pii(line)) is None


def test_a_secret_the_factories_made_is_a_leak():
    remember_secret("Zq3k9-secret-made-by-a-factory_0123456789ab")
    assert LeakCatcher().leak_in("key Zq3k9-secret-made-by-a-factory_0123456789ab issued") == "secret"


def test_ids_counts_and_hashes_pass():
    line = "job 12345 attempt 3f2a-41 sha256=" + "0" * 64 + " took 0.05 s at 2026-01-01T00:00:00"
    assert LeakCatcher().leak_in(line) is None


def test_the_catcher_keeps_a_formatted_line_with_its_arguments():
    catcher = LeakCatcher()
    logger = logging.getLogger("tests.log_guard.sample")
    logger.addHandler(catcher)
    try:
        logger.warning("lead %s", "+966501234567")
    finally:
        logger.removeHandler(catcher)
    assert catcher.records == 1 and catcher.leaks and catcher.leaks[0].startswith("phone:")
