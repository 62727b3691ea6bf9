"""Breaker and quota state live in the database: separate server processes agree on them, and a
restarted process finds them as they were (nothing is kept in process memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from queueing.models import Breaker, BreakerScope, BreakerState
from queueing.services import BreakerAction, breaker_force, jobs_pull
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.real_clock]

SCRIPT = """
import json
from queueing.models import Breaker
from queueing.services import BreakerAction, breaker_force, jobs_pull
from workers_mgmt.models import Worker
result = jobs_pull(worker=Worker.objects.get(pk="w-b"), max_jobs=10)
states = dict(Breaker.objects.values_list("key", "state"))
if {close!r}:
    breaker_force(scope="provider", key="dir", action="force_closed", reason="closed from process B")
print(json.dumps({{"providers": sorted({{c.provider for c in result.claims}}), "jobs": len(result.claims),
                  "throttled_for_s": result.throttled_for_s, "breakers": states}}))
"""


def other_process(*, close: bool = False) -> dict:
    """A separate Django process against the same database (what a second daphne would be)."""
    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SCRIPT.format(close=close)],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_two_processes_share_breakers_and_quotas_and_a_restart_keeps_them():
    maps = make_provider("maps", quota_per_min=1, quota_burst=2)
    make_jobs(10, provider=maps)
    make_jobs(5, provider=make_provider("dir"))
    worker_a, _ = make_worker(worker_id="w-a")
    make_worker(worker_id="w-b")
    # Process A (this one) spends the quota's burst and opens the breaker of "dir".
    assert len(jobs_pull(worker=worker_a, max_jobs=10, providers=["maps"]).claims) == 2
    breaker_force(scope=BreakerScope.PROVIDER, key="dir", action=BreakerAction.FORCE_OPEN)

    # Process B sees both: nothing of "maps" (quota spent), nothing of "dir" (open), and is told
    # to come back when the next "maps" token is due (about a minute). It closes "dir" on its side.
    seen = other_process(close=True)
    assert seen["jobs"] == 0 and seen["breakers"] == {"dir": "open"}
    assert 1 <= seen["throttled_for_s"] <= 60

    # A sees B's change at once.
    assert Breaker.objects.get(key="dir").state == BreakerState.CLOSED
    assert {c.provider for c in jobs_pull(worker=worker_a, max_jobs=10).claims} == {"dir"}

    # A "restarted" process C starts with nothing in memory and finds the quota still spent.
    again = other_process()
    assert again["jobs"] == 0 and again["breakers"] == {"dir": "closed"}
    assert 1 <= again["throttled_for_s"] <= 60
