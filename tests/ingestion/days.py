"""The local days the ingestion tests write on, computed from now so the tests pass on any day.

These live outside conftest.py on purpose: pytest imports a conftest before `--clock-shift` moves the
clock, and test modules after it (tests/clock.py).
"""

from __future__ import annotations

import datetime as dt

from tests.clock import local_day, local_midnight

# A local midnight a week ago. In Riyadh (UTC+3) the local day changes at 21:00 UTC, not at 00:00 UTC.
# DAY_BEFORE and DAY_AFTER are the local days it ends and begins.
RIYADH_MIDNIGHT_UTC = local_midnight(days=-7)
DAY_BEFORE = local_day(RIYADH_MIDNIGHT_UTC - dt.timedelta(minutes=1))
DAY_AFTER = local_day(RIYADH_MIDNIGHT_UTC)
