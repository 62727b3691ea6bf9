import django.core.serializers.json
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    replaces = [('core', '0001_initial')]

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RateLimitState',
            fields=[
                ('key', models.CharField(max_length=200, primary_key=True, serialize=False)),
                ('tat', models.FloatField()),
            ],
            options={
                'verbose_name': 'rate limit state',
                'db_table': 'leadops_ratelimitstate',
            },
        ),
        migrations.CreateModel(
            name='MetricCounter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=63)),
                ('shard', models.PositiveSmallIntegerField()),
                ('value', models.BigIntegerField(default=0)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('name', 'shard'), name='metric_counter_name_shard')],
            },
        ),
        migrations.CreateModel(
            name='StaffAction',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(db_index=True)),
                ('actor_name', models.CharField(db_index=True, max_length=150)),
                ('source', models.CharField(choices=[('admin', 'Admin'), ('command', 'Management command'), ('api', 'Staff API')], max_length=16)),
                ('action', models.CharField(db_index=True, max_length=63)),
                ('object_type', models.CharField(db_index=True, max_length=63)),
                ('object_ids', models.TextField(blank=True)),
                ('object_count', models.PositiveIntegerField(default=0)),
                ('changes', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('detail', models.JSONField(blank=True, default=dict, encoder=django.core.serializers.json.DjangoJSONEncoder)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['object_type', 'created_at'], name='staffaction_object_at')],
            },
        ),
    ]
