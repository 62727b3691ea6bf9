"""Gate `privacy`: the retention purge ran lately and the log masking works
(docs/PRODUCTION_READINESS.md, "privacy")."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from core.logging import PiiMaskingFilter
from core.models import StaffAction
from leadops.readiness.base import Gate, admin_link, age_text, problems_line

PURGE_WITHIN = dt.timedelta(hours=26)

# Made-up values in the shapes the filter must catch; none of them is anyone's.
MASKING_SAMPLES = [
    ("lead 0501234567 added", "0501234567"),
    ("caller +966 50 123 4567", "50 123 4567"),
    ("arabic digits ٠٥٠١٢٣٤٥٦٧", "٠٥٠١٢٣٤٥٦٧"),
    ("mail owner.name@example.com", "owner.name@"),
]


def masking_samples() -> list[dict[str, Any]]:
    """Each sample line as the logs would write it, and whether its personal part was masked."""
    masking = PiiMaskingFilter()
    rows = []
    for text, secret_part in MASKING_SAMPLES:
        record = logging.LogRecord("readiness", logging.INFO, __file__, 0, text, None, None)
        masking.filter(record)
        written = record.getMessage()
        rows.append({"written": written, "masked": secret_part not in written})
    return rows


def masking_problem() -> str:
    """Why the log masking self-check fails, or ""."""
    logging_config: dict[str, Any] = settings.LOGGING
    handlers: dict[str, Any] = logging_config.get("handlers", {})
    filters: dict[str, Any] = logging_config.get("filters", {})
    masking_names = {name for name, spec in filters.items()
                     if _is_masking_filter(spec.get("()") or spec.get("class"))}
    bare = sorted(name for name, spec in handlers.items() if not masking_names & set(spec.get("filters", [])))
    if bare:
        return f"log handler(s) without the PII filter: {', '.join(bare)}"
    if not all(row["masked"] for row in masking_samples()):
        return "the PII filter let a sample phone or email through"
    return ""


def _is_masking_filter(path: Any) -> bool:
    if isinstance(path, str):
        try:
            path = import_string(path)
        except ImportError:
            return False
    return isinstance(path, type) and issubclass(path, PiiMaskingFilter)


def last_purge_at() -> dt.datetime | None:
    """When `purge_retention` (or its schedule) last purged for real: its audit row."""
    return (StaffAction.objects.filter(action="retention.purge").order_by("-created_at")
            .values_list("created_at", flat=True).first())


def check(now: dt.datetime) -> Gate:
    evidence = [
        admin_link("Retention runs", "admin:core_staffaction_changelist", "action__exact=retention.purge"),
        admin_link("Retention policy", "admin:leadops_retentionpolicy_changelist"),
    ]
    problems = []
    last = last_purge_at()
    if last is None:
        problems.append("the retention purge never ran: purge_retention (the q cluster runs it daily)")
    elif now - last > PURGE_WITHIN:
        problems.append(f"the retention purge last ran {age_text(now - last)} ago: is the q cluster running?")
    masking = masking_problem()
    if masking:
        problems.append(masking)
    detail = {"last_purge": last.isoformat() if last else None}
    if problems:
        return Gate("privacy", False, problems_line(problems), evidence, detail)
    assert last is not None
    return Gate("privacy", True, f"the retention purge ran {age_text(now - last)} ago; log masking passes "
                "its self-check", evidence, detail)
