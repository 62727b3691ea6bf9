"""The squashed migrations stand for every migration main ever had (docs/CONTRIBUTING.md, "Migrations").

A database migrated before the squash has only the old names in django_migrations; Django marks a
squashed migration applied when every name in its `replaces` is recorded. A name missing from those
lists would make `migrate` run the squashed migration again on such a database, over tables that exist.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

# Every migration of our apps that existed before the squash, by name.
MIGRATIONS_BEFORE_THE_SQUASH = {
    "alerts": ["0001_alerting", "0002_builtin_rules"],
    "core": ["0001_initial"],
    "ingestion": [
        "0001_initial", "0002_drop_fingerprint_like_index", "0003_fingerprint_lead_without_constraint",
        "0004_suppression_list_and_view_pii",
    ],
    "leadops": [
        "0001_initial", "0002_monitor_events", "0003_models_moved_to_core_and_workers_mgmt",
        "0004_retention_policy", "0005_retention_class_evidence",
    ],
    "queueing": [
        "0001_initial", "0002_breakers_quotas_dlq", "0003_breaker_outcome_bucket_index",
        "0004_attempt_evidence", "0005_recurring_campaigns", "0006_attempt_log_tail",
    ],
    "releases_app": ["0001_initial", "0002_default_channels", "0003_audit_append_only"],
    "workers_mgmt": [
        "0001_initial", "0002_default_worker_config", "0003_config_tuning",
        "0003_credential_rotation_events_enrollment", "0004_merge_rotation_and_tuning",
        "0005_worker_last_self_test", "0005_worker_offline_notice_moved_here",
        "0006_auth_failures_may_be_purged", "0007_merge_self_test_and_auth_purge",
        "0008_credential_audit_retention",
    ],
}
OLD_KEYS = {(app, name) for app, names in MIGRATIONS_BEFORE_THE_SQUASH.items() for name in names}


def test_every_old_migration_is_replaced_by_a_squashed_one():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    replaced = {key for migration in loader.disk_migrations.values() for key in migration.replaces}
    assert OLD_KEYS - replaced == set()
    # Each squashed migration replaces old names of its own app only.
    for (app, _name), migration in loader.disk_migrations.items():
        assert {replaced_app for replaced_app, _ in migration.replaces} <= {app}


@pytest.mark.django_db
def test_a_database_migrated_before_the_squash_has_nothing_to_apply():
    recorder = MigrationRecorder(connection)
    squashed = MigrationLoader(None, ignore_no_migrations=True).replacements
    # The state of a database migrated with the old files: the old names are recorded, the squashed
    # ones are not (migrations added after the squash stay as they are).
    for app, name in squashed:
        recorder.record_unapplied(app, name)
    for app, name in sorted(OLD_KEYS):
        recorder.record_applied(app, name)
    executor = MigrationExecutor(connection)
    assert set(squashed) <= set(executor.loader.applied_migrations)
    assert executor.migration_plan(executor.loader.graph.leaf_nodes()) == []
