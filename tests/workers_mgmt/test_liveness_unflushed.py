"""A liveness UPDATE that is its own transaction does not wait for the WAL flush; one inside a
transaction never relaxes it (docs/PERFORMANCE.md, "Commits nobody needs flushed")."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.factories import make_worker
from workers_mgmt.services import worker_seen

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_liveness_update_of_its_own_commits_without_waiting_for_the_flush_and_only_itself():
    worker, _ = make_worker()
    with CaptureQueriesContext(connection) as captured:
        assert worker_seen(worker=worker)
    [update] = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assert "set_config('synchronous_commit', 'off', true)" in update
    assert _synchronous_commit() == "on"  # the next transaction of the connection waits again
    worker.refresh_from_db()
    assert worker.last_seen_at is not None


def test_a_liveness_update_inside_a_transaction_leaves_its_commit_flushed():
    worker, _ = make_worker()
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        assert worker_seen(worker=worker)
        assert _synchronous_commit() == "on"
    [update] = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE")]
    assert "synchronous_commit" not in update


def test_a_signed_pull_refreshes_liveness_in_a_statement_of_its_own_that_is_not_flushed(signed):
    with CaptureQueriesContext(connection) as captured:
        assert signed.pull(1).status_code == 200
    updates = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("UPDATE workers_mgmt_worker ")]
    assert len(updates) == 1 and "synchronous_commit" in updates[0]
