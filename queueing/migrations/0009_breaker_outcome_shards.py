# Reports of one provider no longer queue on one breaker bucket row: a row per connection shard (docs/PERFORMANCE.md, "What the fleet waited on").

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queueing', '0008_job_ready_notify'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='breakeroutcome',
            name='uniq_breaker_bucket',
        ),
        migrations.AddField(
            model_name='breakeroutcome',
            name='shard',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddConstraint(
            model_name='breakeroutcome',
            constraint=models.UniqueConstraint(fields=('scope', 'key', 'bucket', 'shard'), name='uniq_breaker_bucket_shard'),
        ),
    ]
