from django.db import migrations

# The channels every portal starts with (docs/RELEASES.md); more are added in admin or by
# `rollout_start --channel NAME`.
DEFAULT_CHANNELS = ("stable", "beta", "canary")


def create_channels(apps, schema_editor):
    Channel = apps.get_model("releases_app", "Channel")
    for name in DEFAULT_CHANNELS:
        Channel.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("releases_app", "0001_initial")]

    operations = [migrations.RunPython(create_channels, migrations.RunPython.noop)]
