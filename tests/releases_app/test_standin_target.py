"""A pull or an exchange that stands in for a heartbeat reads its `update_target` in the liveness
UPDATE it makes anyway, as the heartbeat does: the same answer, one statement (docs/API.md,
"Liveness"; docs/PERFORMANCE.md, "The fleet's exchange, stage by stage")."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from releases_app.selectors import update_target_of
from workers_mgmt.models import Worker

pytestmark = pytest.mark.django_db


def _pull(signed):
    with CaptureQueriesContext(connection) as queries:
        answer = signed.pull(1).json()
    return answer, [q["sql"] for q in queries.captured_queries]


def test_a_standing_in_pull_reads_its_update_target_in_its_liveness_update(clock, signed, settings,
                                                                           stable_on, publish):
    from releases_app.services import worker_pin_set

    stable_on("1.2.0")
    signed.pull(1)  # the first request of a worker: its copies warm up
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    standing, with_liveness = _pull(signed)
    expected = update_target_of(signed.worker_id)
    assert expected is not None and expected["version"] == "1.2.0"
    assert standing["update_target"] == expected

    # The liveness UPDATE returned the target: no other statement of the request reads a release.
    [update] = [sql for sql in with_liveness if "releases_app_" in sql]
    assert update.lstrip().startswith(f"UPDATE {Worker._meta.db_table} ") and "RETURNING" in update

    clock.shift(1)
    quiet, without = _pull(signed)
    assert "update_target" not in quiet
    assert not [sql for sql in without if "releases_app_" in sql or f"UPDATE {Worker._meta.db_table} " in sql]

    publish("1.1.0")
    worker_pin_set(worker=Worker.objects.get(pk=signed.worker_id), version="1.1.0", actor="tests")
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    pinned, _ = _pull(signed)
    assert pinned["update_target"]["version"] == "1.1.0"
    assert pinned["update_target"] == update_target_of(signed.worker_id)


def test_an_exchange_that_stands_in_reads_the_same_target(clock, signed, stable_on):
    stable_on("1.2.0")
    answer = signed.post("/api/v1/jobs/exchange", {"reports": [], "pull": {"max": 1}}).json()
    assert answer["update_target"] == update_target_of(signed.worker_id)
    assert answer["update_target"]["version"] == "1.2.0"


def test_a_standing_in_pull_asks_whether_a_push_key_waits_in_its_liveness_update(clock, signed, settings):
    from workers_mgmt.credential_cache import _forget_all
    from workers_mgmt.models import CredentialRotation, DeliveryMode
    from workers_mgmt.services import credential_rotate

    rotations = CredentialRotation._meta.db_table
    signed.pull(1)
    _forget_all()  # as when this process's copy of the key has lapsed: no "none waiting" memo
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    standing, statements = _pull(signed)
    assert "update_target" in standing and "credentials" not in standing
    [asked] = [sql for sql in statements if rotations in sql]
    assert asked.lstrip().startswith(f"UPDATE {Worker._meta.db_table} ")

    worker = Worker.objects.get(pk=signed.worker_id)
    manual = credential_rotate(worker=worker, actor="tests", mode=DeliveryMode.MANUAL)
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    assert "credentials" not in _pull(signed)[0]  # a manual rotation's key is never pushed
    from workers_mgmt.services import credential_revoke

    credential_revoke(credential=worker.credentials.get(key_id=manual.key_id), actor="tests")
    pushed = credential_rotate(worker=worker, actor="tests")
    clock.shift(settings.LEADOPS_LIVENESS_REFRESH_S)
    assert _pull(signed)[0]["credentials"] == {"pending": {"key_id": pushed.key_id, "secret": pushed.secret}}
