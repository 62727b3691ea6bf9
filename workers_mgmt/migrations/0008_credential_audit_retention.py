import importlib

from django.db import migrations

_m0003 = importlib.import_module("workers_mgmt.migrations.0003_credential_rotation_events_enrollment")
_m0006 = importlib.import_module("workers_mgmt.migrations.0006_auth_failures_may_be_purged")

# The credential trail stays append-only against any ordinary DELETE; only the retention purge may
# remove its old rows, and it says so inside its own transaction (SET LOCAL
# leadops.retention_purge = 'on', workers_mgmt.purges.credential_events_purge). A setting that
# any session could set is a guard against mistakes, not against a database owner.
ALLOW_RETENTION_DELETE = _m0006.ALLOW_AUTH_FAILED_DELETE.replace(
    "BEGIN\n",
    "BEGIN\n    IF TG_OP = 'DELETE' AND current_setting('leadops.retention_purge', true) = 'on' THEN\n"
    "        RETURN OLD;\n    END IF;\n",
    1,
)


class Migration(migrations.Migration):

    dependencies = [
        ("workers_mgmt", "0007_merge_self_test_and_auth_purge"),
    ]

    operations = [
        _m0003.PostgresOnlyRunSQL(ALLOW_RETENTION_DELETE, reverse_sql=_m0006.ALLOW_AUTH_FAILED_DELETE),
    ]
