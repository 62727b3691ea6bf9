"""`core.text.json_bytes`: the same bytes whichever encoder writes them."""

from __future__ import annotations

import datetime as dt
import uuid

import orjson
from django.utils import timezone

from core.text import json_bytes


def test_integers_beyond_64_bits_are_written_beside_datetimes_and_uuids_as_orjson_writes_them():
    # orjson refuses the big integer, so the standard library writes the whole value: the datetimes
    # and UUIDs beside it (a row's columns in core/db/bulk.py) come out as orjson writes them.
    values = [timezone.now(), timezone.now().replace(microsecond=0), dt.date(2026, 1, 2),
              dt.datetime(2026, 1, 1, 1, 2, 3), uuid.uuid4(), "مرحبا"]
    big = 2**70
    assert json_bytes({"v": values, "n": big}) == orjson.dumps({"v": values})[:-1] + b',"n":%d}' % big
    assert json_bytes({"v": values}) == orjson.dumps({"v": values})
