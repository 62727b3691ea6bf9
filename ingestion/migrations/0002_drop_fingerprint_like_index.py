"""Drop the LIKE index PostgreSQL gets for the fingerprint primary key.

Django adds a `varchar_pattern_ops` index beside every indexed CharField on PostgreSQL so that
`LIKE 'abc%'` can use an index. Nothing ever searches fingerprints by prefix, and every report
inserts hundreds of them: the extra index only costs writes.
"""

from django.db import migrations

TABLE = "ingestion_leadfingerprint"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [TABLE, "%varchar_pattern_ops%"],
        )
        names = [name for (name,) in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{TABLE}_fingerprint_like" ON "{TABLE}" (fingerprint varchar_pattern_ops)'
    )


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial")]

    operations = [migrations.RunPython(drop_like_index, create_like_index, elidable=True)]
