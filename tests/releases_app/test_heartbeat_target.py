"""The heartbeat's `update_target`: the release a worker should run now, read fresh on every heartbeat,
the same decision as GET /updates/check, for a constant one statement (docs/API.md, "POST /heartbeat")."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.audit import Actor
from core.models import StaffSource
from releases_app.models import Channel, ReleaseAuditEvent
from releases_app.services import (
    rollout_promote,
    rollout_start,
    worker_pin_set,
)
from tests.queueing.test_query_counts import REQUEST_QUERIES, _leg
from workers_mgmt.models import Worker
from workers_mgmt.services import worker_config_cache_clear, worker_update

pytestmark = pytest.mark.django_db


def beat(member) -> dict:
    body = {"version": member.version, "status": "idle", "running_jobs": 0}
    response = member.signed.post("/api/v1/heartbeat", body)
    assert response.status_code == 200, response.content
    return response.json()


def target(member) -> dict | None:
    return beat(member)["update_target"]


def sequence(name: str = "stable") -> int:
    return Channel.objects.get(name=name).sequence


def test_no_release_on_the_channel_answers_null(fleet):
    (member,) = fleet(1)
    assert target(member) is None


def test_an_unknown_channel_answers_null_and_creates_nothing(fleet):
    (member,) = fleet(1, channel="nowhere")
    audit_before = ReleaseAuditEvent.objects.count()
    assert target(member) is None
    # Reads only: the heartbeat neither creates the channel nor signs a manifest.
    assert not Channel.objects.filter(name="nowhere").exists()
    assert ReleaseAuditEvent.objects.count() == audit_before


def test_the_channel_release_whatever_the_worker_runs(fleet, stable_on):
    stable_on("1.0.0")
    old, current = fleet(2)
    old.version = "0.9.0"
    audit_before = ReleaseAuditEvent.objects.count()
    assert target(old) == target(current) == {"version": "1.0.0", "sequence": sequence()}
    assert ReleaseAuditEvent.objects.count() == audit_before


def test_a_rollout_answers_each_worker_what_the_update_check_decides(fleet, stable_on, publish):
    stable_on("1.0.0")
    workers = fleet(6)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-02"], actor="tests",
                  steps=[{"canary": ["w-02"], "hold_s": 1800}, {"percent": 50, "hold_s": 1800},
                         {"percent": 100}])

    def agree() -> dict[str, str]:
        seen = {}
        for member in workers:
            answer = target(member)
            assert answer is not None and answer["sequence"] == sequence()
            check = member.check()
            # The update check names the same release, or says the worker runs it already.
            chosen = check["target"]["version"] if check["target"] else member.version
            assert answer["version"] == chosen, (member.worker_id, answer, check)
            seen[member.worker_id] = answer["version"]
        return seen

    seen = agree()
    assert {w for w, v in seen.items() if v == "1.1.0"} == {"w-02"}
    rollout_promote(channel_name="stable", actor="tests")
    seen = agree()
    assert len([v for v in seen.values() if v == "1.1.0"]) == 3
    # The running version changes nothing: a worker on 1.1.0 already is still told 1.1.0.
    for member in workers:
        member.version = seen[member.worker_id]
    assert agree() == seen


def test_a_pin_wins_until_it_expires(fleet, stable_on, publish):
    stable_on("1.0.0")
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    rollout_promote(channel_name="stable", actor="tests")
    pinned, other = fleet(2)
    worker = Worker.objects.get(pk=pinned.worker_id)
    worker_pin_set(worker=worker, version="1.0.0", actor="tests")
    assert target(pinned) == {"version": "1.0.0", "sequence": sequence()}
    assert target(other) == {"version": "1.1.0", "sequence": sequence()}
    worker_pin_set(worker=worker, version="1.0.0", actor="tests",
                   expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert target(pinned) == {"version": "1.1.0", "sequence": sequence()}


def test_a_rollback_is_in_the_next_heartbeat_with_a_higher_sequence(fleet, stable_on, publish):
    from releases_app.services import channel_rollback

    stable_on("1.0.0")
    (member,) = fleet(1)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", steps=[{"percent": 100, "hold_s": 1800}],
                  actor="tests")
    during = target(member)
    assert during["version"] == "1.1.0"
    channel_rollback(channel_name="stable", actor="tests")
    after = target(member)
    assert after["version"] == "1.0.0" and after["sequence"] > during["sequence"]


def test_a_worker_moved_to_another_channel_is_told_that_channel_at_once(fleet, stable_on):
    stable_on("1.0.0")
    (member,) = fleet(1)
    assert target(member)["version"] == "1.0.0"
    # As staff move it (admin or a command, in any process): the next heartbeat names the new
    # channel's target (none yet), not the old one's.
    worker_update(worker=Worker.objects.get(pk=member.worker_id), values={"channel": "beta"},
                  actor=Actor(name="ops", source=StaffSource.ADMIN))
    assert target(member) is None


def _heartbeat_queries(member, django_assert_num_queries, count: int) -> None:
    beat(member)  # the first heartbeat of a process reads and caches the credential and config
    worker_config_cache_clear()
    beat(member)
    with django_assert_num_queries(count):
        beat(member)


@pytest.mark.parametrize("case", ["no release", "channel", "canary", "cohort of 120", "pinned"])
def test_the_target_costs_one_statement_whatever_the_fleet(case, fleet, stable_on, publish,
                                                             django_assert_num_queries):
    expected = REQUEST_QUERIES["heartbeat"][_leg()]
    if case == "no release":
        (member,) = fleet(1)
        _heartbeat_queries(member, django_assert_num_queries, expected)
        return
    stable_on("1.0.0")
    workers = fleet(120 if case == "cohort of 120" else 3)
    member = workers[-1]
    if case in ("canary", "cohort of 120"):
        publish("1.1.0")
        steps = ([{"canary": [member.worker_id], "hold_s": 1800}] if case == "canary"
                 else [{"percent": 100, "hold_s": 1800}])
        rollout_start(version="1.1.0", channel_name="stable", steps=steps, actor="tests")
    if case == "pinned":
        worker_pin_set(worker=Worker.objects.get(pk=member.worker_id), version="1.0.0", actor="tests")
    _heartbeat_queries(member, django_assert_num_queries, expected)
    assert target(member)["version"] == ("1.1.0" if case in ("canary", "cohort of 120") else "1.0.0")
