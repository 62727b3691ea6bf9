"""Production settings: refuse to start without real keys; `check --deploy` is clean with them."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
KEYS = ("SECRET_KEY", "LEADOPS_SECRETS_KEY", "LEADOPS_FINGERPRINT_KEY", "LEADOPS_SIGNING_KEY")


def run_manage(*args: str, env: dict[str, str], unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    clean = {name: value for name, value in os.environ.items()
             if name not in KEYS and name != "DEBUG" and name not in unset}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, capture_output=True,
                          text=True, timeout=120, env={**clean, **env})


def production_keys() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LEADOPS_SECRETS_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "LEADOPS_FINGERPRINT_KEY": secrets.token_urlsafe(32),
        "LEADOPS_SIGNING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


def test_production_refuses_to_start_without_keys():
    result = run_manage("check", env={"DEBUG": "False"})
    assert result.returncode != 0
    assert "LEADOPS_SECRETS_KEY" in result.stderr


def test_check_deploy_with_only_the_keys_names_the_missing_services():
    env = {"DEBUG": "False", "WEB_CONCURRENCY": "2", **production_keys()}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env,
                        unset=("DATABASE_URL", "REDIS_URL", "EMAIL_URL"))
    assert result.returncode != 0
    # No Redis and SQLite for two processes, mail that goes nowhere (docs/DEPLOY.md, "Settings checks").
    found = {line.split("(", 1)[1].split(")", 1)[0] for line in result.stderr.splitlines() if ": (" in line}
    assert found == {"leadops.W001", "leadops.W002", "leadops.W006", "alerts.W002"}, result.stderr


def test_debug_defaults_to_off():
    result = run_manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)",
                        env={"DJANGO_SETTINGS_MODULE": "leadops.settings", **production_keys()})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_without_debug_and_keys_the_portal_refuses_to_start():
    result = run_manage("check", env={"DJANGO_SETTINGS_MODULE": "leadops.settings"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
