import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

from core.migration_ops import append_only_trigger


# The channels every portal starts with (docs/RELEASES.md); more are added in admin or by
# `rollout_start --channel NAME`.
DEFAULT_CHANNELS = ("stable", "beta", "canary")


def create_channels(apps, schema_editor):
    Channel = apps.get_model("releases_app", "Channel")
    for name in DEFAULT_CHANNELS:
        Channel.objects.get_or_create(name=name)


# The releases audit is append-only (docs/SYSTEM_OVERVIEW.md, "Releases"): the database refuses
# every UPDATE and DELETE of its rows, whoever asks.


class Migration(migrations.Migration):

    replaces = [('releases_app', '0001_initial'), ('releases_app', '0002_default_channels'), ('releases_app', '0003_audit_append_only')]

    initial = True

    dependencies = [
        ('workers_mgmt', '0001_squashed_0008_credential_audit_retention'),
    ]

    operations = [
        migrations.CreateModel(
            name='Release',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('version', models.CharField(max_length=63, unique=True, validators=[django.core.validators.RegexValidator('^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$', "Use 1-63 ASCII letters, digits, '.', '+', '_' or '-', starting with a letter or digit.")])),
                ('artifact_name', models.CharField(blank=True, max_length=255)),
                ('archive_format', models.CharField(blank=True, help_text='tar.gz or zip', max_length=10)),
                ('sha256', models.CharField(blank=True, max_length=64)),
                ('size', models.BigIntegerField(default=0)),
                ('notes', models.TextField(blank=True)),
                ('min_agent_version', models.CharField(blank=True, max_length=63)),
                ('entrypoint', models.CharField(blank=True, max_length=255)),
                ('node_version', models.CharField(blank=True, max_length=40)),
                ('chromium_version', models.CharField(blank=True, max_length=40)),
                ('state', models.CharField(choices=[('uploaded', 'Uploaded'), ('self_testing', 'Self-testing'), ('ready', 'Ready'), ('failed', 'Failed self-test'), ('revoked', 'Revoked')], default='uploaded', max_length=12)),
                ('self_test_report', models.JSONField(blank=True, default=dict)),
                ('created_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='ReleaseAuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(choices=[('release_uploaded', 'Release uploaded'), ('release_self_tested', 'Release self-tested'), ('release_revoked', 'Release revoked'), ('channel_created', 'Channel created'), ('manifest_signed', 'Manifest signed'), ('rollout_started', 'Rollout started'), ('rollout_step', 'Rollout moved to a step'), ('rollout_waiting', 'Rollout waits for approval'), ('rollout_paused', 'Rollout paused'), ('rollout_resumed', 'Rollout resumed'), ('rollout_done', 'Rollout done'), ('rollout_aborted', 'Rollout aborted'), ('rolled_back', 'Channel rolled back'), ('gate_evaluated', 'Health gate evaluated'), ('pin_set', 'Worker pinned'), ('pin_cleared', 'Worker pin cleared')], max_length=30)),
                ('actor', models.CharField(help_text="Staff username, 'command:<user>' or 'system'.", max_length=150)),
                ('channel', models.CharField(blank=True, db_index=True, max_length=40)),
                ('version', models.CharField(blank=True, db_index=True, max_length=63)),
                ('rollout_id_ref', models.BigIntegerField(blank=True, null=True)),
                ('detail', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(db_index=True)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='Channel',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=40, unique=True, validators=[django.core.validators.RegexValidator('^[a-z0-9][a-z0-9_-]{0,39}$', "Use 1-40 lower-case letters, digits, '-' or '_', starting with a letter or digit.")])),
                ('sequence', models.BigIntegerField(default=0)),
                ('manifest', models.JSONField(blank=True, editable=False, null=True)),
                ('manifest_expires_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('manifest_ttl_hours', models.PositiveIntegerField(default=168, help_text='A signed manifest is valid this long; the schedule re-signs it at half-life.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('current', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='releases_app.release')),
                ('previous', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='releases_app.release')),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Rollout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('salt', models.CharField(max_length=32)),
                ('steps', models.JSONField(default=list)),
                ('gates', models.JSONField(blank=True, default=dict)),
                ('step_index', models.PositiveIntegerField(default=0)),
                ('step_started_at', models.DateTimeField()),
                ('state', models.CharField(choices=[('running', 'Running'), ('waiting_approval', 'Waiting for approval'), ('paused', 'Paused'), ('done', 'Done'), ('aborted', 'Aborted'), ('rolled_back', 'Rolled back')], default='running', max_length=20)),
                ('state_reason', models.CharField(blank=True, max_length=300)),
                ('last_gate_result', models.JSONField(blank=True, default=dict)),
                ('started_by', models.CharField(blank=True, max_length=150)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('channel', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='rollouts', to='releases_app.channel')),
                ('from_release', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='releases_app.release')),
                ('release', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='rollouts', to='releases_app.release')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'constraints': [models.UniqueConstraint(condition=models.Q(('state__in', ('running', 'waiting_approval', 'paused'))), fields=('channel',), name='one_active_rollout_per_channel')],
            },
        ),
        migrations.CreateModel(
            name='RolloutTarget',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('worker_id', models.CharField(max_length=63)),
                ('step_index', models.PositiveIntegerField()),
                ('reason', models.CharField(choices=[('canary', 'Canary'), ('cohort', 'Cohort')], max_length=10)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('rollout', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='targets', to='releases_app.rollout')),
            ],
            options={
                'ordering': ['rollout_id', 'step_index', 'worker_id'],
                'constraints': [models.UniqueConstraint(fields=('rollout', 'worker_id'), name='uniq_rollout_target')],
            },
        ),
        migrations.CreateModel(
            name='WorkerPin',
            fields=[
                ('worker', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='release_pin', serialize=False, to='workers_mgmt.worker')),
                ('reason', models.CharField(blank=True, max_length=200)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('release', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='pins', to='releases_app.release')),
            ],
        ),
        migrations.CreateModel(
            name='WorkerReleaseStatus',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('worker_id', models.CharField(max_length=63)),
                ('version', models.CharField(max_length=63)),
                ('downloaded_at', models.DateTimeField(blank=True, null=True)),
                ('installed_at', models.DateTimeField(blank=True, null=True)),
                ('install_ok', models.BooleanField(null=True)),
                ('self_test_ok', models.BooleanField(null=True)),
                ('rolled_back_at', models.DateTimeField(blank=True, null=True)),
                ('last_stage', models.CharField(choices=[('downloaded', 'Downloaded'), ('installed', 'Installed'), ('self_test', 'Self-test'), ('rolled_back', 'Rolled back')], max_length=12)),
                ('last_ok', models.BooleanField()),
                ('last_details', models.JSONField(blank=True, default=dict)),
                ('updated_at', models.DateTimeField()),
            ],
            options={
                'verbose_name_plural': 'worker release statuses',
                'ordering': ['-updated_at'],
                'indexes': [models.Index(fields=['version', 'worker_id'], name='releases_ap_version_563289_idx')],
                'constraints': [models.UniqueConstraint(fields=('worker_id', 'version'), name='uniq_worker_version')],
            },
        ),
        migrations.RunPython(create_channels, migrations.RunPython.noop),
        append_only_trigger('releases_app_releaseauditevent'),
    ]
