"""The per-process credential cache: fewer queries per signed request, changes still honoured."""

from __future__ import annotations

import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.audit import Actor
from core.models import StaffSource
from workers_mgmt.models import WorkerCredential
from workers_mgmt.services import credential_revoke, workers_set_enabled

pytestmark = pytest.mark.django_db

CONFIG = "/api/v1/config"


def _credential_reads(signed) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert signed.get(CONFIG).status_code == 200
    return sum("workers_mgmt_workercredential" in q["sql"] and q["sql"].startswith("SELECT")
               for q in captured.captured_queries)


def test_a_second_request_within_the_ttl_reads_no_credential(signed):
    assert _credential_reads(signed) == 1
    assert _credential_reads(signed) == 0


def test_ttl_zero_turns_the_cache_off(signed, settings):
    settings.LEADOPS_CREDENTIAL_CACHE_S = 0
    assert _credential_reads(signed) == 1
    assert _credential_reads(signed) == 1


def test_a_revocation_in_this_process_is_honoured_at_once(signed, worker_and_secret):
    assert signed.get(CONFIG).status_code == 200
    credential = WorkerCredential.objects.get(key_id=worker_and_secret[1].key_id)
    assert credential_revoke(credential=credential, actor="staff")
    assert signed.get(CONFIG).status_code == 401


def test_disabling_the_worker_in_this_process_is_honoured_at_once(signed, worker_and_secret):
    assert signed.get(CONFIG).status_code == 200
    workers_set_enabled(worker_ids=[worker_and_secret[0].pk], enabled=False, actor=Actor(name="ops", source=StaffSource.ADMIN))
    assert signed.get(CONFIG).status_code == 403


def _elsewhere(change) -> None:
    """Make `change` as another server process (a shell, admin on another node) would: this
    process's copies are not told of it, only the shared credential generation is."""
    from workers_mgmt import credential_cache

    kept = dict(credential_cache._entries)
    change()
    credential_cache._entries.clear()
    credential_cache._entries.update(kept)


def _warm(signed) -> None:
    assert signed.get(CONFIG).status_code == 200
    assert _credential_reads(signed) == 0  # the next request is answered from this process's copy


def test_a_key_revoked_elsewhere_is_refused_on_the_very_next_request(signed, worker_and_secret):
    _warm(signed)
    credential = WorkerCredential.objects.get(key_id=worker_and_secret[1].key_id)
    _elsewhere(lambda: credential_revoke(credential=credential, actor="staff"))
    assert signed.get(CONFIG).status_code == 401


def test_an_emergency_rotation_made_elsewhere_is_refused_on_the_very_next_request(signed, worker_and_secret):
    from workers_mgmt.services import credential_rotate_emergency

    _warm(signed)
    _elsewhere(lambda: credential_rotate_emergency(worker=worker_and_secret[0], actor="cli:ops"))
    assert signed.get(CONFIG).status_code == 401


def test_a_worker_disabled_elsewhere_is_refused_on_the_very_next_request(signed, worker_and_secret):
    _warm(signed)
    actor = Actor(name="ops", source=StaffSource.ADMIN)
    _elsewhere(lambda: workers_set_enabled(worker_ids=[worker_and_secret[0].pk], enabled=False, actor=actor))
    assert signed.get(CONFIG).status_code == 403


def test_a_rate_limit_lowered_elsewhere_holds_on_the_very_next_requests(signed, worker_and_secret):
    from workers_mgmt.services import worker_update

    _warm(signed)
    actor = Actor(name="ops", source=StaffSource.ADMIN)
    _elsewhere(lambda: worker_update(worker=worker_and_secret[0], values={"rate_limit_per_min": 1}, actor=actor))
    # One request a minute: of the next two, one at most gets through (the copy said 600 a minute).
    assert 429 in {signed.get(CONFIG).status_code for _ in range(2)}


def test_a_change_of_an_unrelated_worker_keeps_this_workers_copy(signed, worker_and_secret):
    from tests.factories import make_worker
    from workers_mgmt.services import credential_rotate_emergency

    _warm(signed)
    other, _ = make_worker(worker_id="w-unrelated")
    # In this process and in any other: only the changed worker's copies are dropped.
    credential_rotate_emergency(worker=other, actor="cli:ops")
    assert _credential_reads(signed) == 0
    _elsewhere(lambda: credential_rotate_emergency(worker=other, actor="cli:ops"))
    assert _credential_reads(signed) == 0


def test_the_cached_worker_is_a_private_copy_that_follows_heartbeats(signed):
    assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200
    assert signed.post("/api/v1/heartbeat", {"version": "2", "status": "ok", "running_jobs": 0,
                                             "self_test": {"ok": True}}).status_code == 200
    from workers_mgmt.credential_cache import _entries

    (entry,) = _entries.values()
    cached = entry.credential.worker
    # What decides "came online" is carried into the cache; what a view sets on its copy is not.
    assert cached.reported_version == "2" and cached.last_heartbeat_at is not None
    assert cached.last_self_test != {"ok": True}


def _pending_look_ups(signed) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0})
    assert response.status_code == 200
    reads = sum("workers_mgmt_credentialrotation" in q["sql"] and q["sql"].startswith("SELECT")
                for q in captured.captured_queries)
    return reads, response.json()


def test_a_heartbeat_that_found_no_push_key_skips_the_look_up_until_a_rotation_starts(signed):
    from workers_mgmt.models import Worker
    from workers_mgmt.services import credential_rotate

    assert _pending_look_ups(signed)[0] == 1
    reads, answer = _pending_look_ups(signed)
    assert reads == 0 and "credentials" not in answer
    # A rotation started in this process is pushed at the very next heartbeat.
    issued = credential_rotate(worker=Worker.objects.get(pk=signed.worker_id), actor="alice")
    reads, answer = _pending_look_ups(signed)
    assert reads == 1
    assert answer["credentials"] == {"pending": {"key_id": issued.key_id, "secret": issued.secret}}


def test_ttl_zero_looks_for_a_push_key_on_every_heartbeat(signed, settings):
    settings.LEADOPS_CREDENTIAL_CACHE_S = 0
    assert [_pending_look_ups(signed)[0] for _ in range(2)] == [1, 1]


def test_a_rotation_started_elsewhere_is_offered_on_the_next_heartbeat(signed):
    from workers_mgmt.models import Worker
    from workers_mgmt.services import credential_rotate

    _pending_look_ups(signed)
    assert _pending_look_ups(signed)[0] == 0  # "none waiting" is remembered with the copy
    issued = []
    _elsewhere(lambda: issued.append(credential_rotate(worker=Worker.objects.get(pk=signed.worker_id),
                                                       actor="cli:ops")))
    reads, answer = _pending_look_ups(signed)
    assert reads == 1
    assert answer["credentials"] == {"pending": {"key_id": issued[0].key_id, "secret": issued[0].secret}}


# --- with Redis: the generation counter, the "changing" marker and the epoch ---------------------------

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                                 reason="needs Redis (REDIS_URL); the PostgreSQL + Redis leg of CI runs it")


def _redis():
    from core.redis import redis_client

    return redis_client()


@needs_redis
def test_a_redis_that_lost_its_data_drops_every_copy(signed, worker_and_secret):
    from workers_mgmt.credential_cache import generation_keys

    _warm(signed)
    epoch, counter, _changing = generation_keys(worker_and_secret[0].pk)
    # A restarted Redis has neither the epoch nor the counters: a copy made before must not match
    # the counter's fresh start.
    _redis().delete(epoch, counter)
    assert _credential_reads(signed) == 1
    assert _credential_reads(signed) == 0


@needs_redis
def test_while_a_change_is_marked_the_worker_is_read_from_the_database_and_no_copy_is_kept(
        signed, worker_and_secret):
    from workers_mgmt.credential_cache import generation_keys

    _warm(signed)
    changing = generation_keys(worker_and_secret[0].pk)[2]
    _redis().hset(changing, "a-change-in-progress", 1)
    assert [_credential_reads(signed) for _ in range(2)] == [1, 1]
    _redis().delete(changing)
    assert [_credential_reads(signed) for _ in range(2)] == [1, 0]


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_committed_change_moves_the_counter_and_clears_its_marker(worker_and_secret):
    from workers_mgmt.credential_cache import generation_keys
    from workers_mgmt.services import credential_rotate_emergency

    _epoch, counter, changing = generation_keys(worker_and_secret[0].pk)
    before = int(_redis().get(counter) or 0)
    credential_rotate_emergency(worker=worker_and_secret[0], actor="cli:ops")
    assert int(_redis().get(counter)) > before
    assert _redis().hlen(changing) == 0


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_change_rolled_back_leaves_its_marker_to_expire(worker_and_secret, settings):
    from django.db import transaction

    from workers_mgmt.credential_cache import credentials_changed, generation_keys

    _epoch, counter, changing = generation_keys(worker_and_secret[0].pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        credentials_changed(worker_ids=[worker_and_secret[0].pk])
        raise RuntimeError("the change failed")
    # Nothing was announced; until the marker expires the worker's requests read the database.
    assert _redis().get(counter) is None
    assert _redis().hlen(changing) == 1
    assert 0 < _redis().ttl(changing) <= settings.LEADOPS_CREDENTIAL_CACHE_S + 60


def test_a_request_without_a_copy_reads_its_key_by_a_statement_written_once(signed, monkeypatch):
    # The key's read runs on every request whose process holds no current copy and on every woken
    # long poll; Django compiling its queryset was two thirds of its CPU (docs/PERFORMANCE.md,
    # "The credential read, written once").
    from django.db.models.sql.compiler import SQLCompiler

    compiled = []
    as_sql = SQLCompiler.as_sql

    def recording(self, *args, **kwargs):
        compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", recording)
    assert _credential_reads(signed) == 1
    assert WorkerCredential not in compiled
