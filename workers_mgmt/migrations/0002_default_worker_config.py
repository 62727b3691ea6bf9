from django.db import migrations


def create_default_config(apps, schema_editor):
    WorkerConfig = apps.get_model("workers_mgmt", "WorkerConfig")
    WorkerConfig.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("workers_mgmt", "0001_initial")]

    operations = [migrations.RunPython(create_default_config, migrations.RunPython.noop)]
