"""The chaos run: its seed option, and its marker kept out of the plain `make test`."""

from __future__ import annotations

import os
import random

import pytest


def pytest_addoption(parser):
    parser.addoption("--chaos-seed", type=int, default=None, metavar="N",
                     help="replay the chaos run of this seed (also LEADOPS_CHAOS_SEED); random when absent")


def pytest_collection_modifyitems(config, items):
    # `make test` runs everything; the chaos run takes minutes and a live PostgreSQL + Redis, so it
    # runs only when asked for by marker (`make test-chaos`: pytest -m chaos).
    markexpr = config.getoption("-m") or ""
    if "chaos" in markexpr and "not chaos" not in markexpr:
        return
    skip = pytest.mark.skip(reason="the chaos run: make test-chaos (pytest -m chaos)")
    for item in items:
        if "chaos" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def chaos_seed(request) -> int:
    seed = request.config.getoption("--chaos-seed", default=None)
    if seed is None and os.environ.get("LEADOPS_CHAOS_SEED"):
        seed = int(os.environ["LEADOPS_CHAOS_SEED"])
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**6)
    # Printed first, so a failing run names the seed that replays it.
    print(f"\nchaos seed: {seed} (replay: make test-chaos CHAOS_SEED={seed})", flush=True)
    return seed
