"""The per-process credential cache: fewer queries per signed request, changes still honoured."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.audit import Actor
from core.models import StaffSource
from workers_mgmt.models import CredentialState, WorkerCredential
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


def test_a_change_made_elsewhere_is_seen_within_the_ttl(signed, worker_and_secret, settings):
    settings.LEADOPS_CREDENTIAL_CACHE_S = 0.3
    assert signed.get(CONFIG).status_code == 200
    # Another server process revokes the key: no signal reaches this one.
    WorkerCredential.objects.filter(key_id=worker_and_secret[1].key_id).update(state=CredentialState.REVOKED)
    assert signed.get(CONFIG).status_code == 200  # the documented window
    time.sleep(0.35)
    assert signed.get(CONFIG).status_code == 401


def test_the_cached_worker_is_a_private_copy_that_follows_heartbeats(signed):
    assert signed.post("/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0}).status_code == 200
    assert signed.post("/api/v1/heartbeat", {"version": "2", "status": "ok", "running_jobs": 0,
                                             "self_test": {"ok": True}}).status_code == 200
    from workers_mgmt.credential_cache import _entries

    (entry,) = _entries.values()
    cached = entry[1].worker
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
