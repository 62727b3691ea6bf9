"""Gate `throttling`: every provider with jobs has a quota, a rate or a daily cap
(docs/PRODUCTION_READINESS.md, "throttling")."""

from __future__ import annotations

import datetime as dt

from leadops.readiness.base import Gate, admin_link
from queueing import selectors


def check(now: dt.datetime) -> Gate:
    evidence = [admin_link("Providers", "admin:queueing_provider_changelist")]
    active = set(selectors.providers_with_jobs())
    quotas = {row["provider"]: row for row in selectors.provider_quotas()}
    unlimited = sorted(name for name in active
                       if not (quotas[name]["quota_per_min"] or quotas[name]["daily_cap"]))
    detail = {"providers_with_jobs": sorted(active)}
    if unlimited:
        names = ", ".join(unlimited[:3]) + (f" and {len(unlimited) - 3} more" if len(unlimited) > 3 else "")
        return Gate("throttling", False,
                    f"{len(unlimited)} provider(s) with jobs have no quota ({names}): "
                    f"provider_set {unlimited[0]} --quota-per-min R or --daily-cap D", evidence, detail)
    if not active:
        return Gate("throttling", True, "no provider holds jobs yet", evidence, detail)
    return Gate("throttling", True, f"all {len(active)} provider(s) with jobs have a rate or a daily cap",
                evidence, detail)
