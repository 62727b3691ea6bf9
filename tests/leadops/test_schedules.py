"""The periodic tasks exist in django-q2 after migrate, and each runs its service."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from leadops.schedules import PERIODIC_TASKS
from queueing.models import Job, JobState
from tests.factories import make_jobs, make_provider, make_worker

pytestmark = pytest.mark.django_db


def test_every_periodic_task_is_scheduled_and_importable():
    scheduled = {s.func: s for s in Schedule.objects.all()}
    for _, func, minutes in PERIODIC_TASKS:
        assert func in scheduled, func
        assert scheduled[func].minutes == minutes and scheduled[func].repeats == -1
        assert callable(import_string(func))


def test_scheduled_reaper_requeues_lapsed_leases():
    from queueing.services import jobs_pull

    make_jobs(2, provider=make_provider("maps", lease_seconds=30))
    worker, _ = make_worker(worker_id="r-1")
    jobs_pull(worker=worker, max_jobs=2).claims
    Job.objects.update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))
    reaper = import_string(Schedule.objects.get(func="queueing.tasks.reap_expired_leases").func)
    assert reaper() == 2
    assert Job.objects.filter(state=JobState.QUEUED).count() == 2


def test_partial_migrate_of_a_fresh_database_does_not_fail_on_missing_schedule_table(tmp_path):
    # `migrate ingestion 0001` on an empty database sends post_migrate before django-q2's tables exist.
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}", "DEBUG": "True"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run([sys.executable, "manage.py", "migrate", "ingestion", "0001", "-v0"],
                         cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "fresh.sqlite3").exists()
