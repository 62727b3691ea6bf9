from django.db import migrations, models


class Migration(migrations.Migration):

    replaces = [('leadops', '0001_initial'), ('leadops', '0002_monitor_events'), ('leadops', '0003_models_moved_to_core_and_workers_mgmt'), ('leadops', '0004_retention_policy'), ('leadops', '0005_retention_class_evidence')]

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='MonitorEvent',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('type', models.CharField(max_length=40)),
                ('at', models.DateTimeField()),
                ('data', models.JSONField()),
            ],
            options={
                'verbose_name': 'monitor event',
            },
        ),
        migrations.CreateModel(
            name='RetentionPolicy',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('data_class', models.CharField(choices=[('leads', 'Leads'), ('fingerprints', 'Dedup fingerprints, per-day scope (grace after their day)'), ('counters', 'Hourly ingestion counters'), ('attempts', 'Finished jobs with their attempts'), ('receipts', 'Report receipts (idempotency)'), ('dead_jobs', 'Dead jobs (DLQ)'), ('breaker_audit', 'Breaker transitions (audit)'), ('nonces', 'Request nonces'), ('rate_limit_states', 'Rate-limit states (after their TAT)'), ('auth_failures', 'Failed authentications'), ('credential_audit', 'Credential audit'), ('monitor_events', 'Monitor events (replay log)'), ('staff_audit', 'Staff-action audit'), ('alert_history', 'Alert history and deliveries'), ('evidence', 'Failure screenshots and log tails (evidence)')], max_length=32, unique=True)),
                ('days', models.PositiveIntegerField(blank=True, help_text='Days to keep; empty keeps this class forever.', null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'retention policy',
                'verbose_name_plural': 'retention policies',
                'ordering': ['data_class'],
            },
        ),
    ]
