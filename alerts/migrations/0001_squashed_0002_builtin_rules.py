import django.db.models.deletion
from django.db import migrations, models


# The seven built-in rules with their defaults, so admin can edit them before the evaluator ever ran:
# kind, threshold, for_seconds, severity (the defaults of alerts/rules.py when they were written).
BUILTIN = [
    ("heartbeat_missing", 60, 0, "critical"),
    ("error_rate", 0.5, 60, "warning"),
    ("retry_spike", 50, 0, "warning"),
    ("dlq_growth", 10, 0, "warning"),
    ("stuck_jobs", 600, 0, "warning"),
    ("breaker_open", 0, 0, "warning"),
    ("zero_results", 30, 0, "warning"),
]


def create_rules(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    for kind, threshold, for_seconds, severity in BUILTIN:
        AlertRule.objects.get_or_create(
            kind=kind, defaults={"threshold": threshold, "for_seconds": for_seconds, "severity": severity}
        )


class Migration(migrations.Migration):

    replaces = [('alerts', '0001_alerting'), ('alerts', '0002_builtin_rules')]

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Alert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('fingerprint', models.CharField(max_length=16, unique=True)),
                ('labels', models.JSONField()),
                ('annotations', models.JSONField(default=dict)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('firing', 'Firing'), ('resolved', 'Resolved')], max_length=10)),
                ('value', models.FloatField(blank=True, null=True)),
                ('active_since', models.DateTimeField()),
                ('starts_at', models.DateTimeField(blank=True, help_text='When it started firing.', null=True)),
                ('ends_at', models.DateTimeField(blank=True, help_text='When it resolved.', null=True)),
                ('last_evaluated_at', models.DateTimeField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-updated_at'],
            },
        ),
        migrations.CreateModel(
            name='AlertGroup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('group_key', models.CharField(max_length=64)),
                ('group_labels', models.JSONField(default=dict)),
                ('next_flush_at', models.DateTimeField(blank=True, null=True)),
                ('last_notified_at', models.DateTimeField(blank=True, null=True)),
                ('last_firing', models.JSONField(default=list)),
                ('last_resolved', models.JSONField(default=list)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('next_flush_at__isnull', False)), fields=['next_flush_at'], name='alertgroup_flush_idx')],
            },
        ),
        migrations.CreateModel(
            name='AlertRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('heartbeat_missing', 'Heartbeat missing (per worker)'), ('error_rate', 'Error rate (per provider and per worker)'), ('retry_spike', 'Retry spike (per provider)'), ('dlq_growth', 'Dead-letter queue growth (per provider)'), ('stuck_jobs', 'Stuck jobs (per provider)'), ('breaker_open', 'Circuit breaker open (provider or worker)'), ('zero_results', 'Zero results (per provider)')], max_length=32, unique=True)),
                ('enabled', models.BooleanField(default=True)),
                ('threshold', models.FloatField(help_text='What the condition compares with (see docs/RUNBOOK.md, Alerts).')),
                ('for_seconds', models.PositiveIntegerField(default=0, help_text='The condition must hold this long before the alert fires (pending until then).')),
                ('severity', models.CharField(choices=[('critical', 'Critical'), ('warning', 'Warning'), ('info', 'Info')], default='warning', max_length=10)),
                ('labels', models.JSONField(blank=True, default=dict, help_text='Extra labels added to every alert.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['kind'],
            },
        ),
        migrations.AddField(
            model_name='alert',
            name='rule',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='alerts.alertrule'),
        ),
        migrations.AddIndex(
            model_name='alert',
            index=models.Index(fields=['state', 'rule'], name='alert_state_rule_idx'),
        ),
        migrations.CreateModel(
            name='Receiver',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('kind', models.CharField(choices=[('email', 'Email'), ('slack', 'Slack incoming webhook'), ('teams', 'Microsoft Teams (Workflows webhook)'), ('webhook', 'Webhook (Alertmanager JSON, signed)'), ('alertmanager', 'Alertmanager (POST /api/v2/alerts)')], max_length=20)),
                ('url_encrypted', models.TextField(blank=True, editable=False)),
                ('url_hint', models.CharField(blank=True, editable=False, help_text='Scheme and host of the URL, for display.', max_length=120)),
                ('secret_encrypted', models.TextField(blank=True, editable=False)),
                ('addresses', models.TextField(blank=True, help_text='Email addresses, comma-separated.')),
                ('send_resolved', models.BooleanField(default=False)),
                ('enabled', models.BooleanField(default=True)),
                ('next_send_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.AddField(
            model_name='alertgroup',
            name='receiver',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='groups', to='alerts.receiver'),
        ),
        migrations.AddConstraint(
            model_name='alertgroup',
            constraint=models.UniqueConstraint(fields=('receiver', 'group_key'), name='uniq_alert_group'),
        ),
        migrations.CreateModel(
            name='AlertEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField()),
                ('kind', models.CharField(max_length=20)),
                ('detail', models.CharField(blank=True, max_length=300)),
                ('alert', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='timeline', to='alerts.alert')),
            ],
            options={
                'ordering': ['at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='Notification',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('pending', 'Pending (waiting for its next attempt)'), ('sending', 'Sending'), ('delivered', 'Delivered'), ('failed', 'Failed (gave up)')], default='pending', max_length=10)),
                ('is_test', models.BooleanField(default=False)),
                ('summary', models.CharField(max_length=300)),
                ('message', models.JSONField()),
                ('firing', models.JSONField(default=list)),
                ('resolved', models.JSONField(default=list)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField()),
                ('give_up_at', models.DateTimeField()),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
                ('condition_at', models.DateTimeField(blank=True, null=True)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField()),
                ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='alerts.alertgroup')),
                ('receiver', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='alerts.receiver')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['status', 'next_attempt_at'], name='notification_due_idx')],
            },
        ),
        migrations.CreateModel(
            name='DeliveryAttempt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveSmallIntegerField()),
                ('started_at', models.DateTimeField(db_index=True)),
                ('ok', models.BooleanField()),
                ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField()),
                ('retry_after_s', models.FloatField(blank=True, null=True)),
                ('error', models.CharField(blank=True, max_length=500)),
                ('notification', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='delivery_attempts', to='alerts.notification')),
                ('receiver', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='alerts.receiver')),
            ],
            options={
                'ordering': ['-started_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Route',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveIntegerField(default=0)),
                ('name', models.CharField(max_length=100)),
                ('matchers', models.JSONField(blank=True, default=list, help_text='A list of {"name", "op", "value"}; empty matches every alert.')),
                ('continue_matching', models.BooleanField(default=False)),
                ('group_by', models.JSONField(blank=True, help_text='Label names, e.g. ["alertname"]; empty: inherit.', null=True)),
                ('group_wait_s', models.PositiveIntegerField(blank=True, null=True)),
                ('group_interval_s', models.PositiveIntegerField(blank=True, null=True)),
                ('repeat_interval_s', models.PositiveIntegerField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('parent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='children', to='alerts.route')),
                ('receiver', models.ForeignKey(blank=True, help_text="Empty: the parent's receiver.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='routes', to='alerts.receiver')),
            ],
            options={
                'ordering': ['parent_id', 'position', 'id'],
            },
        ),
        migrations.AddField(
            model_name='alertgroup',
            name='route',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='alerts.route'),
        ),
        migrations.CreateModel(
            name='Silence',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('matchers', models.JSONField(help_text='A list of {"name", "op", "value"}; op is =, !=, =~ or !~.')),
                ('starts_at', models.DateTimeField()),
                ('ends_at', models.DateTimeField()),
                ('created_by', models.CharField(max_length=150)),
                ('comment', models.TextField()),
                ('weekdays', models.JSONField(blank=True, default=list)),
                ('hour_start', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('hour_end', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('expired_early_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-ends_at', '-id'],
                'indexes': [models.Index(fields=['ends_at'], name='silence_ends_idx')],
            },
        ),
        migrations.RunPython(create_rules, migrations.RunPython.noop),
    ]
