"""Backoff bounds of docs/SYSTEM_OVERVIEW.md, "Semantics" for attempts 1..10."""

from __future__ import annotations

import random

import pytest

from queueing.services import backoff_delay_s


@pytest.mark.parametrize("attempt", range(1, 11))
@pytest.mark.parametrize(("base", "cap"), [(30, 3600), (1, 10), (5, 5)])
def test_backoff_stays_between_half_and_full_of_the_capped_exponential(attempt, base, cap):
    d = min(cap, base * 2 ** (attempt - 1))
    rng = random.Random(attempt * 7919 + base)
    delays = [backoff_delay_s(attempt=attempt, base_s=base, cap_s=cap, rng=rng) for _ in range(500)]
    assert all(d / 2 <= delay <= d for delay in delays)
    # Jitter really spreads the retries over the upper half.
    assert max(delays) - min(delays) > d / 4


def test_backoff_defaults_grow_then_cap():
    lows = [backoff_delay_s(attempt=n, base_s=30, cap_s=3600, rng=random.Random(0)) for n in (1, 2, 3)]
    assert 15 <= lows[0] <= 30 and 30 <= lows[1] <= 60 and 60 <= lows[2] <= 120
    assert 1800 <= backoff_delay_s(attempt=40, base_s=30, cap_s=3600) <= 3600
    assert 1800 <= backoff_delay_s(attempt=10_000, base_s=30, cap_s=3600) <= 3600
