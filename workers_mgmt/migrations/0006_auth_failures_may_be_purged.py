import importlib

from django.db import migrations

# The trigger and the PostgreSQL-only RunSQL come from the migration that made them.
_m0003 = importlib.import_module("workers_mgmt.migrations.0003_credential_rotation_events_enrollment")

# The credential trail stays append-only. The aggregated auth_failed rows are counters of noise, not
# credential history: they may grow (as before) and, once old, be deleted by the hourly purge
# (workers_mgmt.tasks.purge_auth_failures). Every other row still refuses DELETE and UPDATE.
REFUSE_EVERY_DELETE = _m0003.APPEND_ONLY_SQL.split("CREATE TRIGGER")[0].replace(
    "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
ALLOW_AUTH_FAILED_DELETE = REFUSE_EVERY_DELETE.replace(
    "BEGIN\n", "BEGIN\n    IF TG_OP = 'DELETE' AND OLD.kind = 'auth_failed' THEN\n        RETURN OLD;\n    END IF;\n", 1)


class Migration(migrations.Migration):

    dependencies = [
        ("workers_mgmt", "0005_worker_offline_notice_moved_here"),
    ]

    operations = [
        _m0003.PostgresOnlyRunSQL(ALLOW_AUTH_FAILED_DELETE, reverse_sql=REFUSE_EVERY_DELETE),
    ]
