"""The shape of a Go/No-Go gate: whether it holds, why in one line, and links to its evidence."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class Evidence:
    """A page of admin that shows what the gate read."""

    label: str
    url: str


@dataclass
class Gate:
    name: str
    ok: bool
    why: str
    evidence: list[Evidence] = field(default_factory=list)
    # Numbers an operator may want beside the verdict (adoption shares, counts); shown in admin.
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "why": self.why,
                "evidence": [{"label": e.label, "url": e.url} for e in self.evidence]}


def admin_link(label: str, url_name: str, query: str = "") -> Evidence:
    """A link to an admin page by its URL name (`admin:app_model_changelist`)."""
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        url = "/admin/"
    return Evidence(label, f"{url}?{query}" if query else url)


def changelist_links(app: str, **labels: str) -> list[Evidence]:
    """Links to change lists of one app, by model: `changelist_links("alerts", receiver="Receivers")`."""
    return [admin_link(label, f"admin:{app}_{model}_changelist") for model, label in labels.items()]


def problems_line(problems: list[str], *, limit: int = 3) -> str:
    """Up to `limit` problems joined into one line, and how many more there are."""
    shown = "; ".join(problems[:limit])
    more = len(problems) - limit
    return f"{shown}; and {more} more" if more > 0 else shown


def age_text(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} h"
    if seconds >= 120:
        return f"{seconds // 60} min"
    return f"{seconds} s"
