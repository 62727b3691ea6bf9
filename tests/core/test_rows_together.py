"""`core.db.rows_together`: several querysets' rows, every statement sent before any is waited for."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.db import pipelined, rows_together
from queueing.models import Job, Provider
from tests.factories import make_jobs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _pipeline_on(settings):
    # Off by default (docs/DEPLOY.md, LEADOPS_DB_PIPELINE): these tests are about the pipelined path.
    settings.LEADOPS_DB_PIPELINE = True


def test_rows_are_the_orm_s_own_in_order_and_converted():
    jobs = make_jobs(3)
    for job in jobs:
        job.payload = {"query": f"cafe {job.pk}", "nested": [1, {"a": None}]}
        job.save(update_fields=["payload"])
    ids = [job.pk for job in jobs]
    with transaction.atomic(), pipelined():
        locked, providers, none = rows_together(
            Job.objects.select_for_update().filter(pk__in=ids).order_by("-pk"),
            Provider.objects.filter(jobs__pk__in=ids).distinct(),
            Job.objects.filter(pk__in=[]),
        )
    expected = list(Job.objects.filter(pk__in=ids).order_by("-pk"))
    assert [job.pk for job in locked] == [job.pk for job in expected]
    assert [job.payload for job in locked] == [job.payload for job in expected]
    assert all(isinstance(job.payload, dict) for job in locked)
    assert [(job.state, job.run_at, job.provider_id) for job in locked] == [
        (job.state, job.run_at, job.provider_id) for job in expected]
    assert [provider.name for provider in providers] == [jobs[0].provider.name]
    assert none == []
    # Instances loaded from the database, as the ORM's: saving them updates, never inserts.
    assert not locked[0]._state.adding


def test_anything_but_plain_rows_is_refused():
    with pytest.raises(ValueError, match="plain Job rows"):
        rows_together(Job.objects.select_related("provider"))
    with pytest.raises(ValueError, match="plain Job rows"):
        rows_together(Job.objects.only("pk"))


@pytest.mark.postgres
def test_in_a_pipelined_block_the_statements_go_out_in_pipeline_mode():
    from psycopg.pq import PipelineStatus

    jobs = make_jobs(2)
    sent_in_pipeline = []

    def record(execute, sql, params, many, context):
        sent_in_pipeline.append(connection.connection.pgconn.pipeline_status == PipelineStatus.ON)
        return execute(sql, params, many, context)

    with transaction.atomic(), pipelined(), connection.execute_wrapper(record):
        first, second = rows_together(Job.objects.filter(pk=jobs[0].pk), Job.objects.filter(pk=jobs[1].pk))
    assert sent_in_pipeline == [True, True]
    assert (first[0].pk, second[0].pk) == (jobs[0].pk, jobs[1].pk)


def test_a_fixed_read_gives_the_orm_s_rows_converted():
    from core.db import FixedRead

    jobs = make_jobs(3)
    for job in jobs:
        job.payload = {"query": f"cafe {job.pk}", "nested": [1, {"a": None}]}
        job.save(update_fields=["payload"])
    ids = [job.pk for job in jobs]
    marks = ", ".join(["%s"] * len(ids))
    with transaction.atomic(), pipelined():
        fixed, none = rows_together(FixedRead(Job, f"id IN ({marks})", ids, "ORDER BY id DESC"),
                                    Job.objects.none())
    expected = list(Job.objects.filter(pk__in=ids).order_by("-pk"))
    fields = [field.attname for field in Job._meta.concrete_fields]
    assert [[getattr(job, name) for name in fields] for job in fixed] == [
        [getattr(job, name) for name in fields] for job in expected]
    assert all(isinstance(job.payload, dict) for job in fixed)
    assert not fixed[0]._state.adding and none == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a write in WITH is PostgreSQL's; CI's PostgreSQL leg runs this")
def test_a_fixed_read_s_head_writes_in_the_same_statement_and_the_read_sees_the_old_rows():
    from django.test.utils import CaptureQueriesContext

    from core.db import FixedRead

    [job] = make_jobs(1)
    head = "WITH bumped AS (UPDATE queueing_job SET priority = priority + %s WHERE id = %s)"
    with transaction.atomic(), pipelined(), CaptureQueriesContext(connection) as captured:
        [rows] = rows_together(FixedRead(Job, "id = %s", [7, job.pk, job.pk], head=head))
    assert [q["sql"][:14] for q in captured.captured_queries] == ["WITH bumped AS"]
    # One snapshot for the whole statement: the read sees the row as it was, the write still happened.
    assert [row.priority for row in rows] == [job.priority]
    job.refresh_from_db()
    assert job.priority == rows[0].priority + 7


def test_a_fixed_read_with_a_related_row_gives_what_select_related_gives(worker_and_secret):
    from core.db import FixedRead
    from workers_mgmt.models import WorkerCredential

    worker, _ = worker_and_secret
    worker.last_metrics = {"cpu": [1, {"a": None}]}
    worker.last_heartbeat_at = timezone.now()
    worker.save(update_fields=["last_metrics", "last_heartbeat_at"])
    key_id = worker.credentials.get().key_id
    table = WorkerCredential._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        [[fixed]] = rows_together(FixedRead(WorkerCredential, f'"{table}"."key_id" = %s', [key_id],
                                            related="worker"))
        fixed.worker.name  # read from the same row: no query of its own
    assert len(captured.captured_queries) == 1
    expected = WorkerCredential.objects.select_related("worker").get(key_id=key_id)
    for instance, orm in ((fixed, expected), (fixed.worker, expected.worker)):
        fields = [field.attname for field in type(orm)._meta.concrete_fields]
        assert [getattr(instance, name) for name in fields] == [getattr(orm, name) for name in fields]
        assert not instance._state.adding
    assert fixed.worker.last_metrics == {"cpu": [1, {"a": None}]}
    assert fixed.worker.last_heartbeat_at.tzinfo is not None
