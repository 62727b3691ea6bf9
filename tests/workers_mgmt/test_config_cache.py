"""The hot-path copy of the worker configuration: fresh after a change here, bounded in age elsewhere."""

from __future__ import annotations

import time

import pytest

from workers_mgmt import services
from workers_mgmt.models import WorkerConfig

pytestmark = pytest.mark.django_db


def test_recent_config_is_served_from_memory_within_its_age(django_assert_num_queries):
    services.worker_config_recent()
    with django_assert_num_queries(0):
        services.worker_config_recent()


def test_a_change_saved_in_this_process_is_seen_at_once():
    assert services.worker_config_recent().max_leads_per_report != 7
    config = services.worker_config_get()
    config.max_leads_per_report = 7
    services.worker_config_save(config=config)
    assert services.worker_config_recent().max_leads_per_report == 7


def test_a_change_made_elsewhere_is_seen_once_the_copy_is_old(monkeypatch):
    services.worker_config_recent()
    WorkerConfig.objects.filter(pk=1).update(max_leads_per_report=9)
    clock = [time.monotonic() + services.WORKER_CONFIG_MAX_AGE_S + 0.1]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    assert services.worker_config_recent().max_leads_per_report == 9
