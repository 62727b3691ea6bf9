import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


# Drop the LIKE index PostgreSQL gets for the fingerprint primary key. Django adds a
# `varchar_pattern_ops` index beside every indexed CharField on PostgreSQL so that `LIKE 'abc%'` can
# use an index. Nothing ever searches fingerprints by prefix, and every report inserts hundreds of
# them: the extra index only costs writes.
FINGERPRINT_TABLE = "ingestion_leadfingerprint"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # CreateModel queues a table's indexes until the end of the migration: create them now, so the
    # LIKE index exists here to be dropped.
    for sql in schema_editor.deferred_sql:
        schema_editor.execute(sql)
    schema_editor.deferred_sql.clear()
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [FINGERPRINT_TABLE, "%varchar_pattern_ops%"],
        )
        names = [name for (name,) in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def create_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS "{FINGERPRINT_TABLE}_fingerprint_like" '
        f'ON "{FINGERPRINT_TABLE}" (fingerprint varchar_pattern_ops)'
    )


class Migration(migrations.Migration):

    replaces = [('ingestion', '0001_initial'), ('ingestion', '0002_drop_fingerprint_like_index'), ('ingestion', '0003_fingerprint_lead_without_constraint'), ('ingestion', '0004_suppression_list_and_view_pii')]

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='IngestCounter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('hour', models.DateTimeField()),
                ('local_day', models.DateField()),
                ('provider', models.CharField(max_length=63)),
                ('worker_id', models.CharField(max_length=63)),
                ('added', models.BigIntegerField(default=0)),
                ('duplicates', models.BigIntegerField(default=0)),
                ('duplicates_in_batch', models.BigIntegerField(default=0)),
                ('duplicates_existing', models.BigIntegerField(default=0)),
                ('invalid', models.BigIntegerField(default=0)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('suppressed', models.BigIntegerField(default=0)),
            ],
            options={
                'indexes': [models.Index(fields=['local_day'], name='ingestion_counter_day_idx')],
                'constraints': [models.UniqueConstraint(fields=('hour', 'provider', 'worker_id'), name='ingestion_counter_bucket_uniq')],
            },
        ),
        migrations.CreateModel(
            name='Lead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=500)),
                ('phone_raw', models.CharField(blank=True, max_length=100)),
                ('city', models.CharField(blank=True, max_length=200)),
                ('category', models.CharField(blank=True, max_length=200)),
                ('address', models.CharField(blank=True, max_length=1000)),
                ('website', models.CharField(blank=True, max_length=2048)),
                ('source_url', models.CharField(blank=True, max_length=2048)),
                ('external_id', models.CharField(blank=True, max_length=255)),
                ('lat', models.FloatField(blank=True, null=True)),
                ('lng', models.FloatField(blank=True, null=True)),
                ('rating', models.FloatField(blank=True, null=True)),
                ('extra', models.JSONField(blank=True, default=dict)),
                ('phone_e164', models.CharField(blank=True, max_length=20, null=True)),
                ('phone_valid', models.BooleanField(default=False)),
                ('phone_type', models.CharField(choices=[('mobile', 'Mobile'), ('fixed_line', 'Fixed line'), ('fixed_line_or_mobile', 'Fixed line or mobile'), ('toll_free', 'Toll free'), ('premium_rate', 'Premium rate'), ('shared_cost', 'Shared cost'), ('voip', 'VoIP'), ('personal_number', 'Personal number'), ('pager', 'Pager'), ('uan', 'Universal access number'), ('voicemail', 'Voicemail'), ('unknown', 'Unknown')], default='unknown', max_length=24)),
                ('phone_region', models.CharField(blank=True, max_length=3)),
                ('name_normalized', models.CharField(blank=True, max_length=500)),
                ('city_normalized', models.CharField(blank=True, max_length=200)),
                ('provider', models.CharField(max_length=63)),
                ('worker_id', models.CharField(max_length=63)),
                ('job_id', models.BigIntegerField(blank=True, null=True)),
                ('attempt_id', models.UUIDField(blank=True, null=True)),
                ('local_day', models.DateField()),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'permissions': [('export_lead', 'Can export leads (CSV, JSONL)'), ('view_pii', 'Can see full phone numbers and download data-subject exports')],
                'indexes': [models.Index(fields=['provider'], name='ingestion_lead_provider_idx'), models.Index(fields=['worker_id'], name='ingestion_lead_worker_idx'), models.Index(fields=['city_normalized'], name='ingestion_lead_city_idx'), models.Index(fields=['local_day'], name='ingestion_lead_day_idx'), models.Index(fields=['phone_e164'], name='ingestion_lead_e164_idx')],
            },
        ),
        migrations.CreateModel(
            name='LeadFingerprint',
            fields=[
                ('fingerprint', models.CharField(max_length=64, primary_key=True, serialize=False)),
                ('scope', models.CharField(max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('lead', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ingestion.lead')),
            ],
        ),
        migrations.CreateModel(
            name='SuppressedPhone',
            fields=[
                ('digest', models.CharField(max_length=64, primary_key=True, serialize=False)),
                ('phone_masked', models.CharField(blank=True, max_length=32)),
                ('reason', models.CharField(max_length=500)),
                ('created_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'verbose_name': 'suppressed phone',
                'verbose_name_plural': 'suppression list',
            },
        ),
        migrations.RunPython(drop_like_index, create_like_index),
    ]
