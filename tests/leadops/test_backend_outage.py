"""A backing service that is briefly gone (Redis restarted, a database connection terminated) must
cost the worker a retry, never a 500 or a lost report (docs/RELIABILITY.md; found by the chaos run)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection

from tests.e2e.servers import free_port
from tests.threads import run_in_threads


def test_redis_down_answers_503_with_retry_after_in_the_protocol_shape(signed, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = signed.get("/api/v1/config")
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "service_unavailable",
                                         "message": "A backing service is briefly unavailable; retry."}}
    assert response["Retry-After"] == "2"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pooled_connections_the_server_terminated_are_replaced_before_use():
    if not connection.settings_dict["OPTIONS"].get("pool"):
        pytest.skip("the connection pool is off (LEADOPS_DB_POOL=false)")
    # Eight connections open at once, then back to the pool, idle and open: after a database
    # restart a busy process holds many. Checked one by one with psycopg's backoff (1, 2, 4, 8 s)
    # they outlast the pool's 10 s timeout; the pool must sweep them all at the first dead one.
    together = threading.Barrier(8)

    def hold() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            together.wait(timeout=30)

    run_in_threads(hold, [()] * 8, timeout=60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()  # back to the pool, still open
    settings_dict = connection.settings_dict
    admin_dsn = (f"host={settings_dict['HOST'] or '127.0.0.1'} port={settings_dict['PORT'] or 5432} "
                 f"user={settings_dict['USER'] or 'postgres'} dbname={settings_dict['NAME']}")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        pids = [pid for (pid,) in admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [settings_dict["NAME"]])]
        terminated = admin.execute("SELECT count(*) FROM unnest(%s::int[]) AS pid WHERE "
                                   "pg_terminate_backend(pid)", [pids]).fetchone()[0]
        assert terminated >= 8
        # pg_terminate_backend only signals: wait until the server has closed them. The eight were
        # given back a moment ago, inside the window in which the pool lends a connection unchecked
        # when nothing arrived on it (core/db/postgresql/base.py); what a closing server sends must
        # still get them checked.
        deadline = time.monotonic() + 10
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                            [pids]).fetchone()[0]:
            assert time.monotonic() < deadline, "the terminated backends did not exit"
            time.sleep(0.02)
    # Without the health check the next query would draw a dead connection and fail; without the
    # sweep it would wait through every dead one and time out.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_given_back_a_moment_ago_is_lent_without_a_check_round_trip(monkeypatch, settings):
    # One round trip less on every request of a busy server (docs/DEPLOY.md, LEADOPS_DB_CHECK_BYPASS_S).
    if not connection.settings_dict["OPTIONS"].get("pool"):
        pytest.skip("the connection pool is off (LEADOPS_DB_POOL=false)")
    from psycopg_pool import ConnectionPool

    checked = []
    stock = ConnectionPool.check_connection

    def counting(conn):
        checked.append(conn)
        stock(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))

    def draws(times: int) -> None:
        for _ in range(times):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            connection.close()  # back to the pool

    settings.LEADOPS_DB_CHECK_BYPASS_S = 5
    draws(25)  # the pool lends first in, first out: every idle connection has now been given back
    checked.clear()
    draws(25)
    assert checked == []
    settings.LEADOPS_DB_CHECK_BYPASS_S = 0
    draws(3)
    assert len(checked) == 3
