"""The test clock: the instants tests travel to, and the `--clock-shift` guard that moves the wall clock."""

from __future__ import annotations

import datetime as dt
import os

from django.utils import timezone

from tests.clock import local_day, local_midnight, local_time, minute_start


def _kernel_now(tmp_path) -> dt.datetime:
    # time-machine patches Python's clocks, not the kernel's: a new file's mtime is the real now.
    probe = tmp_path / "now"
    probe.write_bytes(b"")
    return dt.datetime.fromtimestamp(os.stat(probe).st_mtime, tz=dt.UTC)


def test_clock_shift_moves_the_wall_clock_by_the_days_asked(request, tmp_path):
    days = request.config.getoption("--clock-shift")
    offset = timezone.now() - _kernel_now(tmp_path)
    assert abs(offset - dt.timedelta(days=days)) < dt.timedelta(minutes=2), (days, offset)


def test_local_times_are_on_todays_local_day_in_riyadh(settings):
    settings.TIME_ZONE = "Asia/Riyadh"
    today = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=3))).date()
    late = local_time(23, 30)
    assert late.tzinfo == dt.UTC and (late.hour, late.minute) == (20, 30)
    assert local_day(late) == today
    midnight = local_midnight(days=1)
    assert (midnight.hour, midnight.minute) == (21, 0) and local_day(midnight) == today + dt.timedelta(days=1)
    assert local_midnight(days=-7) == local_midnight() - dt.timedelta(days=7)


def test_minute_start_is_a_round_instant_just_before_now():
    start = minute_start()
    assert start.second == start.microsecond == 0
    assert dt.timedelta(0) <= timezone.now() - start < dt.timedelta(minutes=1)
