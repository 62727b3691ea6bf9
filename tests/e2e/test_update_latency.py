"""Acceptance of the update channel: a rollout step and an immediate rollback reach the fleet
within two heartbeat intervals (docs/RELEASES.md, "How fast a change reaches the fleet").

Ten reference workers (the real `worker_client` Worker and Updater threads) on one channel, real HTTP
against the live worker-API server (another process, on the test database), a heartbeat every second
and the fallback update check an hour away: only the heartbeat's `update_target` can move them in
time. The times run from just before the change is made (the service call, commit included) to the
moment the last worker concerned reports the version in a heartbeat. docs/RELEASES.md, "How fast a
change reaches the fleet".
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest

from releases_app.services import (
    channel_rollback,
    release_publish,
    rollout_promote,
    rollout_start,
)
from releases_app.signing import signing_keys
from tests.e2e.conftest import wait_until
from tests.factories import make_worker
from tests.releases_app.builders import tar_artifact
from worker_client.client import LeadOpsClient
from worker_client.provider import SimulatedProvider
from worker_client.updater import Updater, trusted_keys_from
from worker_client.worker import Worker as ReferenceWorker
from workers_mgmt.models import Worker, WorkerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEARTBEAT_S = 1
WORKERS = 10
# Two heartbeat intervals, no allowance: a worker learns its target at its next heartbeat (within one
# interval), installs a small artifact in well under a second and heartbeats at once after it.
BUDGET_S = 2 * HEARTBEAT_S


def _running(names: set[str], version: str) -> bool:
    """Every one of these workers reported `version` in its latest heartbeat."""
    reported = dict(Worker.objects.filter(pk__in=names).values_list("pk", "reported_version"))
    return len(reported) == len(names) and set(reported.values()) == {version}


def _elapsed(started: float, names: set[str], version: str) -> float:
    """Seconds from `started` until every one of `names` reports `version` in a heartbeat."""
    assert wait_until(lambda: _running(names, version), timeout=30, interval=0.02), (
        version, dict(Worker.objects.filter(pk__in=names).values_list("pk", "reported_version")))
    return time.monotonic() - started


@pytest.fixture
def fleet(worker_api_url, worker_api_media, tmp_path: Path):
    WorkerConfig.objects.update_or_create(pk=1, defaults={"heartbeat_interval_s": HEARTBEAT_S,
                                                          "update_check_interval_s": 3600})
    for version in ("1.0.0", "1.1.0"):
        release_publish(version=version, fileobj=io.BytesIO(tar_artifact(version)),
                        filename=f"worker-{version}.tar.gz", actor="e2e")
    rollout_start(version="1.0.0", channel_name="stable", steps=[{"percent": 100}], actor="e2e")
    rollout_promote(channel_name="stable", actor="e2e")
    key = signing_keys()[0]
    trusted = trusted_keys_from({key.key_id: key.public_b64})
    workers = []
    for index in range(WORKERS):
        _, issued = make_worker(worker_id=f"upd-{index:02d}", channel="stable", rate_limit_per_min=100_000)
        client = LeadOpsClient(worker_api_url, issued.worker_id, issued.key_id, issued.secret, timeout=10)
        updater = Updater(client, root=tmp_path / issued.worker_id, trusted_keys=trusted,
                          current_version="0.9.0")
        workers.append(ReferenceWorker(client, SimulatedProvider(rng=random.Random(index)), updater=updater,
                                       version=updater.current_version))
    for worker in workers:
        worker.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop(timeout=0)
        for worker in workers:
            worker.stop(timeout=30)
            worker.client.close()


def test_a_rollout_step_and_a_rollback_reach_the_fleet_within_two_heartbeats(fleet):
    everyone = {worker.worker_id for worker in fleet}
    # The fleet installs the channel's release first (this also puts 1.0.0 in every worker's kept
    # folders, which the rollback switches back to).
    assert wait_until(lambda: _running(everyone, "1.0.0"), timeout=60)

    started = time.monotonic()
    rollout = rollout_start(version="1.1.0", channel_name="stable", actor="e2e",
                            steps=[{"percent": 50, "hold_s": 1800}, {"percent": 100, "hold_s": 1800}])
    half = set(rollout.targets.values_list("worker_id", flat=True))
    assert len(half) == WORKERS // 2
    step_s = _elapsed(started, half, "1.1.0")
    assert _running(everyone - half, "1.0.0")  # the workers the step did not reach stayed

    started = time.monotonic()
    rollout_promote(channel_name="stable", actor="e2e")
    promote_s = _elapsed(started, everyone, "1.1.0")

    started = time.monotonic()
    channel_rollback(channel_name="stable", actor="e2e")
    rollback_s = _elapsed(started, everyone, "1.0.0")

    print(f"\nupdate latency, heartbeat {HEARTBEAT_S} s, {WORKERS} workers: step 50 % {step_s:.2f} s, "
          f"step 100 % {promote_s:.2f} s, rollback {rollback_s:.2f} s (budget {BUDGET_S} s each)")
    assert step_s <= BUDGET_S and promote_s <= BUDGET_S and rollback_s <= BUDGET_S, (
        step_s, promote_s, rollback_s)
    # What each worker believes it runs is what it told the portal.
    assert all(worker.version == "1.0.0" and worker.updater.current_version == "1.0.0" for worker in fleet)
