"""Tables that every request may add to are purged on a schedule: limiter states, failed authentications."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from core.models import RateLimitState
from leadops.schedules import PERIODIC_TASKS

pytestmark = pytest.mark.django_db


def test_spent_limiter_states_are_purged_and_live_ones_kept(settings):
    from core.ratelimit import gcra_acquire, ratelimit_states_purge

    settings.REDIS_URL = ""
    now = time.time()
    gcra_acquire(key="authfail:ip:10.0.0.1", per_minute=60, burst=1, now=now - 600)  # long refilled
    gcra_acquire(key="worker:w-busy", per_minute=1, burst=1, now=now)  # waits a minute more
    assert ratelimit_states_purge(now=now) == 1
    assert list(RateLimitState.objects.values_list("key", flat=True)) == ["worker:w-busy"]


def test_the_limiter_purge_is_scheduled():
    assert ("limits: purge spent rate-limit states", "leadops.tasks.purge_rate_limit_states", 10) in PERIODIC_TASKS


def test_old_failed_authentications_are_purged_and_other_audit_rows_kept(settings, clock):
    from tests.factories import make_worker
    from workers_mgmt.models import CredentialEvent, CredentialEventKind
    from workers_mgmt.services import auth_failure_record
    from workers_mgmt.tasks import purge_auth_failures

    settings.LEADOPS_AUTH_FAILURE_RETENTION_DAYS = 30
    make_worker(worker_id="w-audited")
    auth_failure_record(worker_id="w-audited", reason="bad_signature", ip="10.0.0.1",
                        at=timezone.now() - dt.timedelta(days=31))
    auth_failure_record(worker_id="w-audited", reason="bad_signature", ip="10.0.0.1",
                        at=timezone.now() - dt.timedelta(days=1))
    assert purge_auth_failures() == 1
    failed = CredentialEvent.objects.filter(kind=CredentialEventKind.AUTH_FAILED)
    assert failed.count() == 1
    assert CredentialEvent.objects.filter(kind=CredentialEventKind.CREATED).exists()
    # The schedule runs it with the retention policy's cut (leadops/retention.py).
    assert any(func == "leadops.tasks.purge_auth_failures" for _, func, _ in PERIODIC_TASKS)


@pytest.mark.postgres
def test_on_postgresql_the_trigger_lets_old_auth_failures_go_and_keeps_the_rest(settings, clock):
    from django.db import DatabaseError, transaction

    from tests.factories import make_worker
    from workers_mgmt.models import CredentialEvent, CredentialEventKind
    from workers_mgmt.purges import auth_failures_purge
    from workers_mgmt.services import auth_failure_record

    make_worker(worker_id="w-pg-audited")
    auth_failure_record(worker_id="w-pg-audited", reason="bad_signature", ip="10.0.0.1",
                        at=timezone.now() - dt.timedelta(days=40))
    assert auth_failures_purge(older_than=timezone.now() - dt.timedelta(days=30)) == 1
    with pytest.raises(DatabaseError), transaction.atomic():
        CredentialEvent.objects.filter(kind=CredentialEventKind.CREATED).delete()
