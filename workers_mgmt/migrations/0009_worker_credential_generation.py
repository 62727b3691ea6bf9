# The credential generation every server process checks its copy of a key against
# (docs/DEPLOY.md, "The credential copy"), and the update check's new default, a fallback now that
# the heartbeat names each worker's target (docs/RELEASES.md).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workers_mgmt', '0001_squashed_0008_credential_audit_retention'),
    ]

    operations = [
        migrations.AddField(
            model_name='worker',
            name='credential_generation',
            field=models.BigIntegerField(default=0, editable=False),
        ),
        migrations.AlterField(
            model_name='workerconfig',
            name='update_check_interval_s',
            field=models.PositiveIntegerField(default=300, help_text='A fallback: workers also check at once when a heartbeat names a new release.'),
        ),
    ]
