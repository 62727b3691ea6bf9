import django.core.validators
import django.db.models.deletion
import workers_mgmt.models
from django.db import migrations, models

from core.migration_ops import append_only_trigger


def create_default_config(apps, schema_editor):
    WorkerConfig = apps.get_model("workers_mgmt", "WorkerConfig")
    WorkerConfig.objects.get_or_create(pk=1)


# The credential trail is append-only, whoever asks (TRUNCATE, which only the test suite's flush uses,
# does not fire row triggers). Three exceptions:
# - the retention purge may delete old rows, and says so inside its own transaction (SET LOCAL
#   leadops.retention_purge = 'on', workers_mgmt.purges.credential_events_purge); a setting any
#   session could set is a guard against mistakes, not against a database owner;
# - the aggregated auth_failed rows are counters of noise, not credential history: once old they may
#   be deleted by the hourly purge (workers_mgmt.tasks.purge_auth_failures);
# - the counter of an aggregated auth_failed row may grow, with every other column unchanged.
CREDENTIAL_EVENTS_MAY_CHANGE = """\
    IF TG_OP = 'DELETE' AND current_setting('leadops.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
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
"""


class Migration(migrations.Migration):

    replaces = [('workers_mgmt', '0001_initial'), ('workers_mgmt', '0002_default_worker_config'), ('workers_mgmt', '0003_config_tuning'), ('workers_mgmt', '0003_credential_rotation_events_enrollment'), ('workers_mgmt', '0004_merge_rotation_and_tuning'), ('workers_mgmt', '0005_worker_last_self_test'), ('workers_mgmt', '0005_worker_offline_notice_moved_here'), ('workers_mgmt', '0006_auth_failures_may_be_purged'), ('workers_mgmt', '0007_merge_self_test_and_auth_purge'), ('workers_mgmt', '0008_credential_audit_retention')]

    initial = True

    dependencies = [
    ]

    operations = [
        migrations.CreateModel(
            name='Worker',
            fields=[
                ('id', models.CharField(max_length=63, primary_key=True, serialize=False, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]{0,62}$', "Use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit.")])),
                ('name', models.CharField(blank=True, max_length=200)),
                ('enabled', models.BooleanField(default=True)),
                ('channel', models.CharField(default='stable', max_length=40)),
                ('rate_limit_per_min', models.PositiveIntegerField(default=workers_mgmt.models.default_rate_limit, help_text='Signed requests accepted per minute (GCRA, shared by all server processes).', validators=[django.core.validators.MinValueValidator(1)])),
                ('last_heartbeat_at', models.DateTimeField(blank=True, null=True)),
                ('reported_version', models.CharField(blank=True, max_length=64)),
                ('reported_status', models.CharField(blank=True, max_length=32)),
                ('running_jobs', models.PositiveIntegerField(default=0)),
                ('last_metrics', models.JSONField(blank=True, default=dict)),
                ('last_ip', models.GenericIPAddressField(blank=True, null=True)),
                ('notes', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('last_self_test', models.JSONField(blank=True, null=True)),
            ],
            options={
                'ordering': ['id'],
            },
        ),
        migrations.CreateModel(
            name='WorkerConfig',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('poll_interval_s', models.PositiveIntegerField(default=5, validators=[django.core.validators.MinValueValidator(1)])),
                ('heartbeat_interval_s', models.PositiveIntegerField(default=30, validators=[django.core.validators.MinValueValidator(5)])),
                ('max_batch', models.PositiveIntegerField(default=10, validators=[django.core.validators.MinValueValidator(1)])),
                ('report_chunk_leads', models.PositiveIntegerField(default=200, validators=[django.core.validators.MinValueValidator(1)])),
                ('update_check_interval_s', models.PositiveIntegerField(default=3600)),
                ('extra', models.JSONField(blank=True, default=dict, help_text='Free-form settings passed to workers.')),
                ('version', models.PositiveIntegerField(default=1, editable=False)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('long_poll_wait_s', models.PositiveIntegerField(default=0, help_text='Longest a pull with wait_s waits for a job (0: pulls never wait).', validators=[django.core.validators.MaxValueValidator(30)])),
                ('max_body_bytes', models.PositiveIntegerField(default=5242880, help_text='Largest request body a worker sends (never above LEADOPS_MAX_BODY_BYTES).', validators=[django.core.validators.MinValueValidator(1024)])),
                ('max_leads_per_report', models.PositiveIntegerField(default=1000, help_text='Leads accepted in one report (never above LEADOPS_MAX_LEADS_PER_REPORT).', validators=[django.core.validators.MinValueValidator(1)])),
            ],
            options={
                'verbose_name': 'worker configuration',
                'verbose_name_plural': 'worker configuration',
            },
        ),
        migrations.CreateModel(
            name='RequestNonce',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('worker_id', models.CharField(max_length=63)),
                ('nonce', models.CharField(max_length=128)),
                ('seen_at', models.DateTimeField(db_index=True)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('worker_id', 'nonce'), name='uniq_worker_nonce')],
            },
        ),
        migrations.CreateModel(
            name='WorkerCredential',
            fields=[
                ('key_id', models.CharField(max_length=40, primary_key=True, serialize=False)),
                ('secret_encrypted', models.TextField(editable=False)),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('current', 'Current'), ('previous', 'Previous (grace)'), ('revoked', 'Revoked')], max_length=10)),
                ('grace_until', models.DateTimeField(blank=True, null=True)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('worker', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credentials', to='workers_mgmt.worker')),
            ],
            options={
                'ordering': ['worker_id', '-created_at'],
                'indexes': [models.Index(fields=['worker', 'state'], name='workers_mgm_worker__85f82f_idx')],
                'constraints': [models.UniqueConstraint(condition=models.Q(('state', 'pending')), fields=('worker',), name='one_pending_credential_per_worker')],
            },
        ),
        migrations.CreateModel(
            name='CredentialEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('worker_id', models.CharField(db_index=True, max_length=63)),
                ('key_id', models.CharField(blank=True, max_length=40)),
                ('kind', models.CharField(choices=[('created', 'Created'), ('delivered', 'Delivered'), ('verified', 'Verified'), ('promoted', 'Promoted'), ('expired', 'Expired'), ('revoked', 'Revoked'), ('auth_failed', 'Authentication failed'), ('enrollment_issued', 'Enrollment token issued'), ('enrolled', 'Enrolled')], max_length=20)),
                ('reason', models.CharField(blank=True, max_length=60)),
                ('actor', models.CharField(blank=True, help_text="Staff username, 'worker', 'system' or 'enrollment'.", max_length=150)),
                ('ip', models.GenericIPAddressField(blank=True, null=True)),
                ('minute', models.DateTimeField(blank=True, null=True)),
                ('count', models.PositiveIntegerField(default=1)),
                ('created_at', models.DateTimeField(db_index=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('kind', 'auth_failed')), fields=('worker_id', 'reason', 'minute'), name='uniq_auth_failed_per_minute')],
            },
        ),
        migrations.CreateModel(
            name='CredentialRotation',
            fields=[
                ('credential', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='rotation', serialize=False, to='workers_mgmt.workercredential')),
                ('mode', models.CharField(choices=[('push', 'Push (next heartbeat)'), ('manual', 'Manual (shown once to staff)')], default='push', max_length=10)),
                ('grace_seconds', models.PositiveIntegerField(default=86400)),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('promoted_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name='EnrollmentToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('expires_at', models.DateTimeField()),
                ('used_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('worker', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='enrollment_tokens', to='workers_mgmt.worker')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='WorkerOfflineNotice',
            fields=[
                ('worker_id', models.CharField(max_length=63, primary_key=True, serialize=False)),
                ('last_heartbeat_at', models.DateTimeField(null=True)),
                ('announced_at', models.DateTimeField()),
            ],
            options={
                'verbose_name': 'worker offline notice',
                'db_table': 'leadops_workerofflinenotice',
            },
        ),
        migrations.RunPython(create_default_config, migrations.RunPython.noop),
        append_only_trigger(
            'workers_mgmt_credentialevent', allow=CREDENTIAL_EVENTS_MAY_CHANGE, errcode='insufficient_privilege',
        ),
    ]
