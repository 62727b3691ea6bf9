"""Changelists of the big tables: no full counts, a calendar drill-down read from the small tables."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.functional import cached_property

from queueing.selectors import campaign_progress


class EnqueuedFilter(admin.SimpleListFilter):
    title = "enqueued"
    parameter_name = "enqueued"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(enqueued_at__isnull=self.value() == "no")
        return queryset


class CampaignChangeList(ChangeList):
    """Fetch the progress of the whole page in one query, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        campaigns = list(self.result_list)  # fills the queryset's cache; the template reuses it
        progress = campaign_progress(campaign_ids=[campaign.pk for campaign in campaigns])
        for campaign in campaigns:
            campaign.page_progress = progress.get(campaign.pk)


class JobChangeList(ChangeList):
    """A job list whose date drill-down costs two indexed reads instead of a scan of the table.

    Django's date hierarchy asks the database for the distinct years, months or days that hold rows,
    which on a million jobs reads them all (about a second on PostgreSQL). Here the links are the
    calendar between the first and the last matching job, found by id (ids follow `created_at`),
    so a day without jobs may be offered and simply lists nothing.
    """

    @cached_property
    def calendar_hierarchy(self) -> dict[str, Any]:
        field = self.date_hierarchy
        try:
            year, month, day = (int(self.params.get(f"{field}__{part}") or 0)
                                for part in ("year", "month", "day"))
            if year and month and day:
                chosen = dt.date(year, month, day)
        except ValueError:
            return {"show": False}

        def link(**parts: int) -> str:
            return self.get_query_string({f"{field}__{part}": value for part, value in parts.items()},
                                         [f"{field}__"])

        if year and month and day:
            return {"show": True,
                    "back": {"link": link(year=year, month=month),
                             "title": formats.date_format(chosen, "YEAR_MONTH_FORMAT").capitalize()},
                    "choices": [{"title": formats.date_format(chosen, "MONTH_DAY_FORMAT")}]}
        # The first and last matching jobs bound the calendar offered.
        ordered = self.queryset.order_by("pk").values_list(field, flat=True)
        first, last = ordered.first(), ordered.last()
        if first is None or last is None:
            return {"show": True, "back": None, "choices": []}
        first, last = sorted((timezone.localtime(first).date(), timezone.localtime(last).date()))
        if not year:
            if first.year != last.year:
                return {"show": True, "back": None,
                        "choices": [{"link": link(year=y), "title": str(y)}
                                    for y in range(first.year, last.year + 1)]}
            year, month = first.year, (first.month if first.month == last.month else 0)
        if month:
            days = range(first.day if (first.year, first.month) == (year, month) else 1,
                         (last.day if (last.year, last.month) == (year, month)
                          else calendar.monthrange(year, month)[1]) + 1)
            return {"show": True, "back": {"link": link(year=year), "title": str(year)},
                    "choices": [{"link": link(year=year, month=month, day=d),
                                 "title": formats.date_format(dt.date(year, month, d), "MONTH_DAY_FORMAT")}
                                for d in days]}
        months = range(first.month if first.year == year else 1,
                       (last.month if last.year == year else 12) + 1)
        return {"show": True, "back": {"link": link(), "title": "All dates"},
                "choices": [{"link": link(year=year, month=m),
                             "title": formats.date_format(dt.date(year, m, 1), "YEAR_MONTH_FORMAT")}
                            for m in months]}
