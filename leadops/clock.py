"""The one clock: aware datetimes from django.utils.timezone, and the local day of TIME_ZONE."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone


def now() -> dt.datetime:
    return timezone.now()


def local_date(moment: dt.datetime | None = None) -> dt.date:
    """The calendar day of `moment` in TIME_ZONE (Asia/Riyadh by default), not in UTC."""
    return timezone.localtime(moment or timezone.now()).date()
