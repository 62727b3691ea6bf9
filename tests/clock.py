"""Instants for tests that freeze or move the clock, always computed from the (possibly shifted) now.

A test must pass on any day (docs/CONTRIBUTING.md, "Tests and the clock"): it freezes the clock before
it creates the data it then reads, and every instant it travels to is relative to the real now. These
helpers name the instants tests need: a round "start" near now, and a local time of day (Riyadh by
default) on a day counted from today. Call them while the test module is imported or while the test
runs, never at conftest import: `--clock-shift` moves the clock only once pytest is configured.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.utils import timezone


def minute_start(*, days: int = 0) -> dt.datetime:
    """The start of the current UTC minute, `days` days from now: a round instant near the real now."""
    return timezone.now().replace(second=0, microsecond=0) + dt.timedelta(days=days)


def local_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local_midnight(*, days: int = 0) -> dt.datetime:
    """The instant the local day (TIME_ZONE) `days` days after today begins, as an aware UTC datetime."""
    day = timezone.now().astimezone(local_zone()).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(), tzinfo=local_zone()).astimezone(dt.UTC)


def local_time(hour: int, minute: int = 0, *, days: int = 0) -> dt.datetime:
    """The instant of this local wall-clock time on the local day `days` days after today, in UTC."""
    day = timezone.now().astimezone(local_zone()).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=local_zone()).astimezone(dt.UTC)


def local_day(moment: dt.datetime) -> dt.date:
    """The local calendar day of `moment`."""
    return moment.astimezone(local_zone()).date()
