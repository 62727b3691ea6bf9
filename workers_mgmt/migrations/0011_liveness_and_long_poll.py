"""Liveness from any signed request (`Worker.last_seen_at`) and long polls on by default.

docs/API.md, "Liveness" and "Long poll". Existing workers start from their last heartbeat; a fleet
configuration still at the old default (0, long polls off) moves to the new one (30 s).
"""

import django.core.validators
from django.db import migrations, models


def forwards(apps, schema_editor):
    Worker = apps.get_model("workers_mgmt", "Worker")
    Worker.objects.filter(last_seen_at__isnull=True).update(last_seen_at=models.F("last_heartbeat_at"))
    WorkerConfig = apps.get_model("workers_mgmt", "WorkerConfig")
    WorkerConfig.objects.filter(long_poll_wait_s=0).update(long_poll_wait_s=30)


class Migration(migrations.Migration):

    dependencies = [
        ("workers_mgmt", "0010_credentialevent_staff_action"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="last_seen_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.AlterField(
            model_name="workerconfig",
            name="long_poll_wait_s",
            field=models.PositiveIntegerField(
                default=30,
                help_text="Longest a pull with wait_s waits for a job (0: pulls never wait). A waiting pull holds "
                          "no thread and no database connection; 30 s keeps an idle worker at 2 requests a minute.",
                validators=[django.core.validators.MaxValueValidator(30)]),
        ),
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
