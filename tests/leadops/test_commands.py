"""Management command contracts (docs/RUNBOOK.md, "Management commands"): JSON output and one-line errors."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from queueing.models import Job, Provider
from workers_mgmt.models import WorkerCredential

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_worker_prints_its_credential_once_as_json():
    data = json.loads(run("create_worker", "edge-7", "--channel", "canary", "--rate-limit", "90", "--json"))
    assert set(data) == {"worker_id", "key_id", "secret"}
    credential = WorkerCredential.objects.get(key_id=data["key_id"])
    assert credential.worker.channel == "canary" and credential.worker.rate_limit_per_min == 90
    assert data["secret"] not in credential.secret_encrypted


@pytest.mark.parametrize("args", [("Bad Id!",), ("ok-id", "--rate-limit", "0")])
def test_create_worker_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        run("create_worker", *args)


def test_create_worker_refuses_an_existing_id():
    run("create_worker", "dup")
    with pytest.raises(CommandError):
        run("create_worker", "dup")


def test_enqueue_jobs_creates_the_provider_with_default_policy():
    run("enqueue_jobs", "--provider", "fresh", "--count", "4", "--payload", '{"query": "x"}', "--priority", "3")
    provider = Provider.objects.get(name="fresh")
    assert provider.max_attempts == 5 and provider.lease_seconds == 120
    assert set(Job.objects.values_list("priority", flat=True)) == {3}
    assert Job.objects.filter(provider=provider, payload={"query": "x"}).count() == 4


@pytest.mark.parametrize("args", [
    ("--provider", "p", "--count", "0"),
    ("--provider", "p", "--count", "1", "--payload", "{bad"),
    ("--provider", "p", "--count", "1", "--payload", "[1]"),
    ("--provider", "Not Valid", "--count", "1"),
])
def test_enqueue_jobs_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        run("enqueue_jobs", *args)


@pytest.mark.parametrize("args", [
    ("--workers", "2"),
    ("--url", "ftp://x", "--workers", "2"),
    ("--url", "http://127.0.0.1:9", "--workers", "0"),
    ("--url", "http://127.0.0.1:9", "--workers", "two"),
])
def test_simulate_fleet_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        run("simulate_fleet", *args)
