"""On PostgreSQL the hot statements are planned once per connection, not on every run
(LEADOPS_DB_PREPARE; docs/PERFORMANCE.md, "Statements planned once"; docs/DEPLOY.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import make_worker
from workers_mgmt.auth import credential_read

ROOT = Path(__file__).resolve().parents[2]


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_statement_run_a_few_times_on_a_connection_is_prepared_there():
    _, credential = make_worker()
    for _ in range(6):
        found = credential_read(credential.key_id)
        assert found is not None and found.key_id == credential.key_id
    # PostgreSQL holds the read's plan for this connection (earlier tests on it may have prepared
    # others); the parameter went apart from the text.
    prepared = _prepared_statements()
    assert any("workers_mgmt_workercredential" in s and "JOIN" in s and '"key_id" = $1' in s for s in prepared)
    assert not any(credential.key_id in s for s in prepared)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_prepared_statement_still_answers_for_each_new_parameter():
    _, first = make_worker()
    _, second = make_worker()
    for _ in range(6):
        assert credential_read(first.key_id).worker_id == first.worker_id
    assert credential_read(second.key_id).worker_id == second.worker_id
    assert credential_read("lk_not_a_key") is None


def _options(**env: str) -> dict[str, object]:
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "o = settings.DATABASES['default'].get('OPTIONS', {}); "
            "print(json.dumps({k: o.get(k) for k in ('server_side_binding', 'prepare_threshold')}))")
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADOPS_DB_")}
    base.update({"DJANGO_SETTINGS_MODULE": "leadops.settings",
                 "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/leadops_unused", **env})
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_prepared_statements_are_on_by_default_and_off_when_a_pooler_needs_it():
    assert _options() == {"server_side_binding": True, "prepare_threshold": 5}
    # Django's own defaults: parameters bound on the client, nothing prepared.
    assert _options(LEADOPS_DB_PREPARE="false") == {"server_side_binding": None, "prepare_threshold": None}
