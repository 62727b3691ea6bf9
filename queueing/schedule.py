"""When a recurring campaign is due: "every N hours" or a cron expression in the portal's time zone.

croniter (pinned) reads the cron expressions; "every N hours" is ours, counted from the previous
due time so runs never drift by the minute the tick happens to take (docs/RUNBOOK.md,
"Recurring campaigns").
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

from croniter import CroniterError, croniter
from django.conf import settings
from django.core.exceptions import ValidationError

_EVERY_RE = re.compile(r"^every\s+(?:(\d{1,3})\s+)?hours?$", re.IGNORECASE)
MAX_EVERY_HOURS = 24 * 7


@dataclass(frozen=True)
class CampaignSchedule:
    every_hours: int | None = None
    cron: str | None = None

    def next_after(self, moment: dt.datetime, *, previous_due: dt.datetime | None = None) -> dt.datetime:
        """The first due time strictly after `moment` (aware, UTC)."""
        if self.every_hours is not None:
            step = dt.timedelta(hours=self.every_hours)
            if previous_due is None:
                return moment
            due = previous_due + step
            if due <= moment:
                # Due times missed while paused or down are not made up: one run, then the beat.
                due += step * ((moment - due) // step + 1)
            return due
        assert self.cron is not None
        zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
        local = croniter(self.cron, moment.astimezone(zone)).get_next(dt.datetime)
        return local.astimezone(dt.UTC)


def schedule_parse(text: str) -> CampaignSchedule:
    """Read a campaign's schedule; raise ValidationError with a message an operator can act on."""
    text = " ".join(text.split())
    match = _EVERY_RE.match(text)
    if match:
        hours = int(match.group(1) or 1)
        if not 1 <= hours <= MAX_EVERY_HOURS:
            raise ValidationError(f"Give between 1 and {MAX_EVERY_HOURS} hours.")
        return CampaignSchedule(every_hours=hours)
    if len(text.split()) != 5:
        raise ValidationError('Use "every N hours" or a cron expression of five fields, e.g. "0 6 * * *".')
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValidationError(f"Not a cron expression: {exc}") from None
    if not croniter.is_valid(text):
        raise ValidationError("Not a cron expression.")
    return CampaignSchedule(cron=text)


def schedule_validator(text: str) -> None:
    if text.strip():
        schedule_parse(text)
