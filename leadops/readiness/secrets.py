"""Gate `secrets`: every enabled worker signs with its own current key, none too old, no rotation
stuck, and the audit holds every rotation (docs/PRODUCTION_READINESS.md, "secrets")."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from leadops.readiness.base import Gate, age_text, changelist_links, problems_line
from workers_mgmt import selectors


def check(now: dt.datetime) -> Gate:
    max_age = dt.timedelta(days=settings.LEADOPS_READINESS_KEY_MAX_AGE_DAYS)
    problems = []
    keyless = selectors.workers_enabled_without_current_key()
    if keyless:
        problems.append(f"{len(keyless)} enabled worker(s) have no current key ({', '.join(keyless[:3])}): "
                        "issue one or disable them")
    old = selectors.current_keys_created_before(cutoff=now - max_age)
    if old:
        worker_id, _, created = old[0]
        problems.append(f"{len(old)} key(s) older than {max_age.days} days (oldest: {worker_id}, "
                        f"{age_text(now - created)}): rotate_worker_secret {worker_id}")
    stuck = selectors.rotations_stuck(now=now)
    if stuck:
        worker_id, _, started = stuck[0]
        problems.append(f"{len(stuck)} rotation(s) pending past their grace (oldest: {worker_id}, started "
                        f"{age_text(now - started)} ago): check the worker or rotate with --emergency")
    unaudited = selectors.rotations_missing_from_audit()
    if unaudited:
        problems.append(f"{len(unaudited)} rotation(s) missing from the credential audit "
                        f"({', '.join(unaudited[:3])})")
    evidence = changelist_links("workers_mgmt", workercredential="Worker keys",
                                credentialevent="Credential audit", worker="Workers")
    oldest = selectors.oldest_current_key_created_at()
    detail = {"rotations": selectors.rotations_count(), "max_age_days": max_age.days,
              "oldest_key_age": age_text(now - oldest) if oldest else None}
    if problems:
        return Gate("secrets", False, problems_line(problems), evidence, detail)
    if oldest is None:
        why = "no enabled worker yet: every worker created gets its own key"
    else:
        why = (f"every enabled worker signs with its own current key; the oldest is "
               f"{age_text(now - oldest)} old (limit {max_age.days} days); {detail['rotations']} rotation(s) "
               "audited")
    return Gate("secrets", True, why, evidence, detail)
