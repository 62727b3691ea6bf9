"""The yield gate: judge a canary by what its jobs produced, against the rest of its channel.

Both cohorts are read over the same window (from the canary's first install to now) and weighed by
the same provider mix (the canary's finished attempts per provider), so a canary that happened to
get the hard provider is not judged against the easy one (docs/RELEASES.md, "Yield gate").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from queueing.selectors import attempt_yield_since

# Each measure as "higher is better": the zero-result and block/evidence shares are turned round,
# so one rule (canary >= min_share x baseline) judges all four.
MEASURES: dict[str, str] = {
    "usable_phone_share": "usable-phone share of reported leads",
    "leads_per_job": "leads per succeeded job",
    "non_zero_share": "share of succeeded jobs with results",
    "unblocked_share": "share of attempts without block or evidence",
}


@dataclass
class YieldVerdict:
    """What the gate found: `low` names each measure below its floor, with the numbers."""

    checked: bool
    low: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)


def _measures(row: dict[str, int]) -> dict[str, float | None]:
    reported = row["added"] + row["duplicates"] + row["invalid"]
    usable = row["added"] + row["duplicates"]
    succeeded, finished = row["succeeded"], row["finished"]
    return {
        "usable_phone_share": usable / reported if reported else None,
        "leads_per_job": usable / succeeded if succeeded else None,
        "non_zero_share": 1 - row["zero"] / succeeded if succeeded else None,
        "unblocked_share": 1 - row["blocked"] / finished if finished else None,
    }


def _mixed(per_provider: dict[str, dict[str, float | None]], weights: dict[str, int],
           name: str) -> float | None:
    """The provider-weighted mean of one measure over the providers both cohorts have."""
    total = value = 0.0
    for provider, weight in weights.items():
        measure = per_provider.get(provider, {}).get(name)
        if measure is None or weight <= 0:
            continue
        total += weight
        value += weight * measure
    return value / total if total else None


def yield_judge(*, canary_since: dict[str, dt.datetime], baseline_workers: list[str],
                gates: dict[str, Any]) -> YieldVerdict:
    """Compare the canary cohort with the rest of the channel; writes nothing."""
    min_share = float(gates["yield_min_share"])
    min_jobs = int(gates["yield_min_jobs"])
    if min_share <= 0 or not canary_since:
        return YieldVerdict(checked=False, checks={"yield": "off" if min_share <= 0 else "no canary"})
    window_start = min(canary_since.values())
    canary = attempt_yield_since(since_by_worker=canary_since)
    baseline = attempt_yield_since(since_by_worker=dict.fromkeys(baseline_workers, window_start))
    shared = sorted(set(canary) & set(baseline))
    canary_jobs = sum(canary[p]["succeeded"] for p in shared)
    baseline_jobs = sum(baseline[p]["succeeded"] for p in shared)
    checks: dict[str, Any] = {"yield_canary_jobs": canary_jobs, "yield_baseline_jobs": baseline_jobs,
                              "yield_providers": shared, "yield_min_share": min_share}
    if canary_jobs < min_jobs or baseline_jobs < min_jobs:
        checks["yield"] = f"too few succeeded jobs (need {min_jobs} in each cohort)"
        return YieldVerdict(checked=False, checks=checks)
    weights = {provider: canary[provider]["finished"] for provider in shared}
    canary_measures = {provider: _measures(canary[provider]) for provider in shared}
    baseline_measures = {provider: _measures(baseline[provider]) for provider in shared}
    low: list[str] = []
    for name, label in MEASURES.items():
        new = _mixed(canary_measures, weights, name)
        old = _mixed(baseline_measures, weights, name)
        checks[f"yield_{name}"] = {"canary": new, "baseline": old}
        if new is None or old is None or old <= 0:
            continue
        if new < min_share * old:
            low.append(f"{label} {new:.3g} below {min_share:.0%} of baseline {old:.3g}")
    checks["yield"] = "low" if low else "ok"
    return YieldVerdict(checked=True, low=low, checks=checks)
