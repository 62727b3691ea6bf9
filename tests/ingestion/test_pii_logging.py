"""PiiMaskingFilter: phones and emails never reach a log line."""

from __future__ import annotations

import io
import logging

import pytest

from core.logging import PiiMaskingFilter, mask_pii


@pytest.mark.parametrize(("text", "expected"), [
    ("lead +966501234567 added", "lead +9665****4567 added"),
    ("00966501234567", "+9665****4567"),
    ("966501234567", "+9665****4567"),
    ("0501234567", "+9665****4567"),
    ("050-123-4567", "+9665****4567"),
    ("+966 (0) 50 123 4567", "+9665****4567"),
    ("+9660501234567", "+9665****4567"),
    ("٠٥٠١٢٣٤٥٦٧", "+9665****4567"),
    ("+٩٦٦٥٠١٢٣٤٥٦٧", "+9665****4567"),
    ("۰۵۰۱۲۳۴۵۶۷", "+9665****4567"),
    ("011 234 5678", "+9661****5678"),
    ("8001240000", "+9668****0000"),
    ("+1 (415) 555-2671", "+1****2671"),
    ("two: 0501234567, 0551234567", "two: +9665****4567, +9665****4567"),
    ("mail ahmed.ali@example.com now", "mail a***@example.com now"),
])
def test_mask_pii(text, expected):
    assert mask_pii(text) == expected


@pytest.mark.parametrize("text", [
    "job 12345 attempt 3 took 250 ms",
    "at 2026-03-01T20:59:00+03:00",
    "attempt 550e8400-e29b-41d4-a716-446655440000",
    "added=15 duplicates=3 invalid=2",
])
def test_ordinary_numbers_are_left_alone(text):
    assert mask_pii(text) == text


def make_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(PiiMaskingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.ingestion.pii")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_filter_masks_message_and_args_of_every_kind():
    logger, stream = make_logger()
    logger.info("phone %s from %s", "0501234567", "ali@example.org")
    logger.info("lead %(lead)s", {"lead": {"name": "x", "phone": "+966 55 123 4567"}})
    logger.info("raw number %d", 966501234567)
    logger.info("inline +966501234567 in the message")
    logger.info("count %d of %s", 3, "maps")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "phone +9665****4567 from a***@example.org",
        "lead {'name': 'x', 'phone': '+9665****4567'}",
        "raw number +9665****4567",
        "inline +9665****4567 in the message",
        "count 3 of maps",
    ]


def test_filter_masks_exception_text():
    logger, stream = make_logger()
    try:
        raise ValueError("bad phone 0551234567")
    except ValueError:
        logger.exception("failed for %s", "0501234567")
    output = stream.getvalue()
    assert "0551234567" not in output and "0501234567" not in output
    assert "+9665****4567" in output


def test_filter_never_drops_a_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("only one",), None)
    assert PiiMaskingFilter().filter(record) is True
    assert "withheld" in record.getMessage()
