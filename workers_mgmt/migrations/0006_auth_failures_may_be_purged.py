from django.db import migrations


class PostgresOnlyRunSQL(migrations.RunSQL):
    """RunSQL that runs on PostgreSQL only (SQLite has no plpgsql and no trigger to change)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


# The credential trail stays append-only. The aggregated auth_failed rows are counters of noise, not
# credential history: they may grow (as before) and, once old, be deleted by the hourly purge
# (workers_mgmt.tasks.purge_auth_failures). Every other row still refuses DELETE and UPDATE.
ALLOW_AUTH_FAILED_DELETE = """
CREATE OR REPLACE FUNCTION workers_mgmt_credentialevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.kind = 'auth_failed' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.kind = 'auth_failed' AND NEW.count > OLD.count
       AND (NEW.id, NEW.worker_id, NEW.key_id, NEW.kind, NEW.reason, NEW.actor, NEW.ip, NEW.minute,
            NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.worker_id, OLD.key_id, OLD.kind, OLD.reason, OLD.actor, OLD.ip, OLD.minute,
            OLD.created_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'workers_mgmt_credentialevent is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

REFUSE_EVERY_DELETE = """
CREATE OR REPLACE FUNCTION workers_mgmt_credentialevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.kind = 'auth_failed' AND NEW.count > OLD.count
       AND (NEW.id, NEW.worker_id, NEW.key_id, NEW.kind, NEW.reason, NEW.actor, NEW.ip, NEW.minute,
            NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.worker_id, OLD.key_id, OLD.kind, OLD.reason, OLD.actor, OLD.ip, OLD.minute,
            OLD.created_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'workers_mgmt_credentialevent is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("workers_mgmt", "0005_worker_offline_notice_moved_here"),
    ]

    operations = [
        PostgresOnlyRunSQL(ALLOW_AUTH_FAILED_DELETE, reverse_sql=REFUSE_EVERY_DELETE),
    ]
