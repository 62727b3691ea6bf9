"""The seven built-in rules with their defaults, so admin can edit them before the evaluator ever ran."""

from django.db import migrations

# kind, threshold, for_seconds, severity (the same defaults as alerts/rules.py at the time of writing)
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
    dependencies = [("alerts", "0001_alerting")]

    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
