"""Every handler LOGGING defines masks phones: 30 PII samples, including exception text, none comes out."""

from __future__ import annotations

import copy
import logging
import logging.config

import pytest
from django.conf import settings

SAMPLES = [
    "+966501234567", "00966501234567", "966501234567", "0501234567", "050-123-4567", "050 123 4567",
    "(050) 123 4567", "+966 (0) 50 123 4567", "+966-50-123-4567", "+966.50.123.4567", "٠٥٠١٢٣٤٥٦٧",
    "+٩٦٦٥٠١٢٣٤٥٦٧", "٠٠٩٦٦٥٠١٢٣٤٥٦٧", "۰۵۰۱۲۳۴۵۶۷", "۰۵۰ ۱۲۳ ۴۵۶۷", "0501234567\u00a0", "0112345678",
    "011 234 5678", "8001240000", "920012345", "+1 (415) 555-2671", "+44 20 7946 0958",
    "lead Cafe ٠٥٠١٢٣٤٥٦٧ added", "phone=0501234567;", "tel:+966501234567", "{'phone': '0501234567'}",
    "اتصل على 0501234567 الآن", "two 0501234567 and 0551112222", "ahmed.ali@example.com",
    "mail me at sara@example.sa please",
]
# Fragments that would betray a sample: the last seven digits of each number and the mailbox names.
LEAKS = ["1234567", "١٢٣٤٥٦٧", "۱۲۳۴۵۶۷", "123 4567", "2345678", "234 5678", "1240000", "0012345",
         "5552671", "555-2671", "7946 0958", "1112222", "ahmed.ali", "sara@"]


def test_every_handler_in_logging_carries_the_pii_filter():
    handlers = settings.LOGGING["handlers"]
    assert handlers
    for name, handler in handlers.items():
        filters = handler.get("filters", [])
        assert any(settings.LOGGING["filters"][f].get("()") == "core.logging.PiiMaskingFilter" for f in filters), name


@pytest.fixture
def configured_handlers():
    """The LOGGING handlers built by dictConfig, their output captured (after filters, formatted)."""
    logging.config.dictConfig(copy.deepcopy(settings.LOGGING))
    captured: dict[str, list[str]] = {}
    for name in settings.LOGGING["handlers"]:
        handler = logging._handlers[name]  # type: ignore[attr-defined]
        captured[name] = []
        handler.emit = lambda record, h=handler, out=captured[name]: out.append(h.format(record))
    yield captured
    # Fresh handlers again, as Django's setup made them (the patched ones are dropped).
    logging.config.dictConfig(copy.deepcopy(settings.LOGGING))


def test_thirty_samples_through_every_handler_come_out_masked(configured_handlers):
    assert len(SAMPLES) == 30
    logger = logging.getLogger("leadops.test.pii")
    logger.setLevel(logging.INFO)
    for sample in SAMPLES:
        logger.warning("reported %s", sample)
        logger.warning(f"inline {sample} in a longer message")
        logger.info("as a dict %s", {"lead": {"phone": sample}})
        try:
            raise ValueError(f"bad lead phone {sample}")
        except ValueError:
            logger.exception("ingest failed")
        try:
            try:
                raise KeyError(sample)
            except KeyError as inner:
                raise RuntimeError("wrapped") from inner
        except RuntimeError:
            logger.error("chained", exc_info=True)
    for name, lines in configured_handlers.items():
        assert len(lines) == 5 * len(SAMPLES), name
        text = "\n".join(lines)
        assert "Traceback" in text and "ValueError: bad lead phone +9665****4567" in text
        for leak in LEAKS:
            assert leak not in text, (name, leak)
