"""Gate `updates`: a signing key; every channel with workers has a signed, unexpired manifest whose
release went out canary first, no unexplained rollback in 24 h; adoption is reported
(docs/PRODUCTION_READINESS.md, "updates")."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from leadops.readiness.base import Gate, changelist_links, problems_line
from releases_app import selectors as release_selectors
from workers_mgmt import selectors as worker_selectors


def check(now: dt.datetime) -> Gate:
    evidence = changelist_links("releases_app", channel="Channels", rollout="Rollouts",
                                releaseauditevent="Release audit")
    key_ids = release_selectors.signing_key_ids()
    if not key_ids:
        return Gate("updates", False, "no manifest signing key: set LEADOPS_SIGNING_KEY", evidence)
    online_cutoff = now - dt.timedelta(seconds=settings.LEADOPS_HEARTBEAT_OVERDUE_S)
    channels = worker_selectors.enabled_worker_channels(online_cutoff=online_cutoff)
    problems: list[str] = []
    adoption: dict[str, dict[str, object]] = {}
    for name in sorted(channels):
        facts = release_selectors.channel_readiness(name=name, now=now)
        problems.extend(f"channel {name}: {problem}" for problem in facts["problems"])
        versions = channels[name]["online_versions"]
        online = sum(versions.values())
        on_current = versions.get(facts["current"], 0) if facts["current"] else 0
        adoption[name] = {"current": facts["current"], "online": online, "on_current": on_current,
                          "share": round(on_current / online, 3) if online else None}
    detail = {"signing_key_ids": key_ids, "adoption": adoption}
    if problems:
        return Gate("updates", False, problems_line(problems), evidence, detail)
    if not channels:
        return Gate("updates", True, f"signing key {key_ids[0]} ready; no enabled worker on any channel yet",
                    evidence, detail)
    shares = ", ".join(
        f"{name} {entry['current']} on {entry['on_current']}/{entry['online']} online"
        for name, entry in adoption.items()
    )
    return Gate("updates", True,
                f"every channel's manifest is signed and current, released canary first ({shares})",
                evidence, detail)
