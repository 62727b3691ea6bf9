from django.db import migrations


class PostgresOnlyRunSQL(migrations.RunSQL):
    """RunSQL on PostgreSQL only: SQLite has no plpgsql (there the model refuses changes itself)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


# The releases audit is append-only (docs/SYSTEM_OVERVIEW.md, "Releases"): the database refuses
# every UPDATE and DELETE of its rows, whoever asks.
FORWARD = """
CREATE FUNCTION releases_app_releaseauditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'releases_app_releaseauditevent is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER releases_app_releaseauditevent_append_only
    BEFORE UPDATE OR DELETE ON releases_app_releaseauditevent
    FOR EACH ROW EXECUTE FUNCTION releases_app_releaseauditevent_append_only();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS releases_app_releaseauditevent_append_only ON releases_app_releaseauditevent;
DROP FUNCTION IF EXISTS releases_app_releaseauditevent_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("releases_app", "0002_default_channels")]

    operations = [PostgresOnlyRunSQL(FORWARD, BACKWARD)]
