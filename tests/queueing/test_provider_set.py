"""provider_set creates or changes a provider's policy; bad arguments exit non-zero in one line."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from queueing.models import Provider

pytestmark = pytest.mark.django_db


def test_provider_set_creates_then_changes_the_policy():
    call_command("provider_set", "maps", "--quota-per-min", "30", "--burst", "4", "--daily-cap", "500",
                 "--max-attempts", "3", "--lease-seconds", "60", stdout=StringIO())
    provider = Provider.objects.get(name="maps")
    assert (provider.quota_per_min, provider.quota_burst, provider.daily_cap, provider.max_attempts,
            provider.lease_seconds, provider.enabled) == (30, 4, 500, 3, 60, True)
    call_command("provider_set", "maps", "--disable", "--quota-per-min", "0", stdout=StringIO())
    provider.refresh_from_db()
    assert provider.quota_per_min is None and provider.daily_cap == 500 and not provider.enabled


@pytest.mark.parametrize("args", [["Bad Name!"], ["maps", "--burst", "0"], ["maps", "--lease-seconds", "1"],
                                  ["maps", "--daily-cap", "-1"]])
def test_provider_set_refuses_bad_arguments(args):
    with pytest.raises(CommandError):
        call_command("provider_set", *args, stdout=StringIO())
    assert not Provider.objects.exists()


@pytest.mark.parametrize("args", [["provider_set", "maps", "--enable", "--disable"],
                                  ["provider_set", "maps", "--burst", "x"], ["dlq", "drop"]])
def test_bad_arguments_exit_non_zero_with_one_line(args):
    result = subprocess.run([sys.executable, "manage.py", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_policy_changes_are_logged_field_by_field_and_a_no_op_logs_nothing(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="queueing.services")
    call_command("provider_set", "maps", "--quota-per-min", "30", stdout=StringIO())
    call_command("provider_set", "maps", "--quota-per-min", "60", "--disable", stdout=StringIO())
    call_command("provider_set", "maps", "--quota-per-min", "60", stdout=StringIO())
    lines = [r.getMessage() for r in caplog.records if r.name == "queueing.services"]
    assert lines[0].startswith("provider maps created: ") and "quota_per_min None -> 30" in lines[0]
    assert lines[1] == "provider maps changed: enabled True -> False, quota_per_min 30 -> 60"
    assert len(lines) == 2
