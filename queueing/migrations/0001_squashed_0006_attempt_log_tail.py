import django.core.validators
import django.db.models.deletion
import queueing.schedule
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    replaces = [('queueing', '0001_initial'), ('queueing', '0002_breakers_quotas_dlq'), ('queueing', '0003_breaker_outcome_bucket_index'), ('queueing', '0004_attempt_evidence'), ('queueing', '0005_recurring_campaigns'), ('queueing', '0006_attempt_log_tail')]

    initial = True

    dependencies = [
        ('workers_mgmt', '0001_squashed_0008_credential_audit_retention'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Provider',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=63, unique=True, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_.-]{0,62}$', "Use lower-case letters, digits, '.', '-' or '_'.")])),
                ('enabled', models.BooleanField(default=True, help_text='Disabled providers hand out no jobs.')),
                ('max_attempts', models.PositiveSmallIntegerField(default=5, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                ('backoff_base_s', models.PositiveIntegerField(default=30, validators=[django.core.validators.MinValueValidator(1)])),
                ('backoff_cap_s', models.PositiveIntegerField(default=3600, validators=[django.core.validators.MinValueValidator(1)])),
                ('lease_seconds', models.PositiveIntegerField(default=120, validators=[django.core.validators.MinValueValidator(5), django.core.validators.MaxValueValidator(43200)])),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('breaker_cooldown_s', models.PositiveIntegerField(default=120, validators=[django.core.validators.MinValueValidator(1)])),
                ('breaker_failure_pct', models.PositiveSmallIntegerField(default=50, help_text='Open when at least this share of outcomes in the window failed.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)])),
                ('breaker_min_outcomes', models.PositiveIntegerField(default=20, validators=[django.core.validators.MinValueValidator(1)])),
                ('breaker_probes', models.PositiveSmallIntegerField(default=3, validators=[django.core.validators.MinValueValidator(1)])),
                ('breaker_window_s', models.PositiveIntegerField(default=300, validators=[django.core.validators.MinValueValidator(10)])),
                ('daily_cap', models.PositiveIntegerField(blank=True, help_text='Jobs handed out per local day (TIME_ZONE midnight); empty: no cap.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                ('quota_burst', models.PositiveIntegerField(default=1, help_text='Jobs that may be handed out at once.', validators=[django.core.validators.MinValueValidator(1)])),
                ('quota_per_min', models.PositiveIntegerField(blank=True, help_text='Jobs handed out per minute on average (empty: no rate limit).', null=True, validators=[django.core.validators.MinValueValidator(1)])),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Campaign',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200)),
                ('queries', models.TextField(help_text='One search query per line.')),
                ('cities', models.TextField(help_text='One city per line.')),
                ('priority', models.SmallIntegerField(default=0, help_text='Higher runs first.')),
                ('enqueued_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('jobs_created', models.PositiveIntegerField(default=0, editable=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('created_by', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='campaigns', to='queueing.provider')),
                ('next_run_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('schedule', models.CharField(blank=True, help_text='Empty: run once. "every N hours" (e.g. "every hour", "every 6 hours"), or a cron expression in the portal\'s time zone (e.g. "0 6 * * *": every day at 06:00).', max_length=100, validators=[queueing.schedule.schedule_validator])),
                ('schedule_paused', models.BooleanField(default=False, editable=False)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='Job',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('payload', models.JSONField(blank=True, default=dict)),
                ('priority', models.SmallIntegerField(default=0)),
                ('state', models.CharField(choices=[('queued', 'Queued'), ('leased', 'Leased'), ('succeeded', 'Succeeded'), ('dead', 'Dead'), ('cancelled', 'Cancelled')], default='queued', max_length=10)),
                ('run_at', models.DateTimeField()),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('max_attempts', models.PositiveSmallIntegerField(default=5)),
                ('current_attempt_id', models.UUIDField(blank=True, null=True)),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.JSONField(blank=True, null=True)),
                ('dead_reason', models.CharField(blank=True, max_length=40)),
                ('leads_added', models.PositiveIntegerField(default=0)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('campaign', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='queueing.campaign')),
                ('leased_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='workers_mgmt.worker')),
                ('provider', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='jobs', to='queueing.provider')),
            ],
            options={
                'ordering': ['-id'],
                'indexes': [models.Index(models.OrderBy(models.F('priority'), descending=True), models.F('run_at'), models.F('id'), condition=models.Q(('state', 'queued')), name='job_ready_idx'), models.Index(condition=models.Q(('state', 'leased')), fields=['lease_expires_at'], name='job_lease_idx'), models.Index(fields=['state', 'provider'], name='job_state_provider_idx'), models.Index(fields=['campaign', 'state'], name='job_campaign_state_idx'), models.Index(fields=['finished_at'], name='job_finished_idx')],
            },
        ),
        migrations.CreateModel(
            name='ReportReceipt',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('worker_id', models.CharField(max_length=63)),
                ('idempotency_key', models.CharField(max_length=200)),
                ('request_hash', models.CharField(max_length=64)),
                ('response', models.JSONField()),
                ('created_at', models.DateTimeField(db_index=True)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='queueing.job')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('worker_id', 'idempotency_key'), name='uniq_report_key')],
            },
        ),
        migrations.CreateModel(
            name='JobAttempt',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('number', models.PositiveSmallIntegerField()),
                ('state', models.CharField(choices=[('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('lost', 'Lease lost'), ('released', 'Released'), ('cancelled', 'Cancelled')], default='running', max_length=10)),
                ('claimed_at', models.DateTimeField()),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('error', models.JSONField(blank=True, null=True)),
                ('reports', models.PositiveIntegerField(default=0)),
                ('leads_added', models.PositiveIntegerField(default=0)),
                ('leads_duplicates', models.PositiveIntegerField(default=0)),
                ('leads_invalid', models.PositiveIntegerField(default=0)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_set', to='queueing.job')),
                ('worker', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='workers_mgmt.worker')),
                ('log_tail', models.TextField(blank=True, default='')),
            ],
            options={
                'ordering': ['-claimed_at'],
                'indexes': [models.Index(fields=['job', 'claimed_at'], name='queueing_jo_job_id_11212e_idx'), models.Index(fields=['finished_at', 'worker'], name='attempt_finished_idx')],
            },
        ),
        migrations.CreateModel(
            name='ProviderQuotaState',
            fields=[
                ('provider', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='quota_state', serialize=False, to='queueing.provider')),
                ('tat', models.FloatField(default=0.0, help_text='GCRA theoretical arrival time (epoch seconds).')),
                ('day', models.DateField(blank=True, null=True)),
                ('day_count', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='DeadJob',
            fields=[
            ],
            options={
                'verbose_name': 'dead job',
                'verbose_name_plural': 'dead jobs (DLQ)',
                'proxy': True,
            },
            bases=('queueing.job',),
        ),
        migrations.CreateModel(
            name='Breaker',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(choices=[('provider', 'Provider'), ('worker', 'Worker')], max_length=10)),
                ('key', models.CharField(max_length=63)),
                ('state', models.CharField(choices=[('closed', 'Closed'), ('open', 'Open'), ('half_open', 'Half-open')], default='closed', max_length=10)),
                ('opened_at', models.DateTimeField(blank=True, null=True)),
                ('retry_at', models.DateTimeField(blank=True, null=True)),
                ('counting_since', models.DateTimeField(blank=True, null=True)),
                ('probes_left', models.PositiveIntegerField(default=0)),
                ('probes_succeeded', models.PositiveIntegerField(default=0)),
                ('forced', models.BooleanField(default=False, help_text='Held in this state by staff.')),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['scope', 'key'],
                'indexes': [models.Index(fields=['state'], name='breaker_state_idx')],
                'constraints': [models.UniqueConstraint(fields=('scope', 'key'), name='uniq_breaker')],
            },
        ),
        migrations.CreateModel(
            name='BreakerOutcome',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(choices=[('provider', 'Provider'), ('worker', 'Worker')], max_length=10)),
                ('key', models.CharField(max_length=63)),
                ('bucket', models.DateTimeField()),
                ('successes', models.PositiveIntegerField(default=0)),
                ('failures', models.PositiveIntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('scope', 'key', 'bucket'), name='uniq_breaker_bucket')],
                'indexes': [models.Index(fields=['bucket'], name='queueing_breakeroutcome_bucket')],
            },
        ),
        migrations.CreateModel(
            name='BreakerTransition',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('scope', models.CharField(choices=[('provider', 'Provider'), ('worker', 'Worker')], max_length=10)),
                ('key', models.CharField(max_length=63)),
                ('from_state', models.CharField(choices=[('closed', 'Closed'), ('open', 'Open'), ('half_open', 'Half-open')], max_length=10)),
                ('to_state', models.CharField(choices=[('closed', 'Closed'), ('open', 'Open'), ('half_open', 'Half-open')], max_length=10)),
                ('reason', models.CharField(max_length=200)),
                ('at', models.DateTimeField(db_index=True)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='AttemptEvidence',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('storage_name', models.CharField(max_length=255)),
                ('content_type', models.CharField(choices=[('image/png', 'PNG'), ('image/jpeg', 'JPEG')], max_length=20)),
                ('size', models.PositiveIntegerField()),
                ('sha256', models.CharField(max_length=64)),
                ('width', models.PositiveIntegerField()),
                ('height', models.PositiveIntegerField()),
                ('created_at', models.DateTimeField(db_index=True)),
                ('attempt', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='evidence', to='queueing.jobattempt')),
                ('job', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='evidence', to='queueing.job')),
            ],
            options={
                'verbose_name': 'attempt evidence',
                'verbose_name_plural': 'attempt evidence',
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='CampaignRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('trigger', models.CharField(choices=[('manual', 'Enqueued by staff'), ('schedule', 'Schedule')], max_length=10)),
                ('scheduled_for', models.DateTimeField()),
                ('created_at', models.DateTimeField()),
                ('jobs_created', models.PositiveIntegerField(default=0)),
                ('skipped', models.BooleanField(default=False)),
                ('note', models.CharField(blank=True, max_length=300)),
                ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='queueing.campaign')),
            ],
            options={
                'ordering': ['-campaign_id', '-number'],
                'constraints': [models.UniqueConstraint(fields=('campaign', 'number'), name='uniq_campaign_run_number')],
            },
        ),
        migrations.AddField(
            model_name='job',
            name='campaign_run',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='jobs', to='queueing.campaignrun'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['campaign_run', 'state'], name='job_campaign_run_state_idx'),
        ),
    ]
