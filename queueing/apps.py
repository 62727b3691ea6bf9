from django.apps import AppConfig
from django.db.models.signals import post_migrate


class QueueingConfig(AppConfig):
    name = "queueing"
    verbose_name = "Job queue"

    def ready(self) -> None:
        from queueing import checks
        from queueing.selectors import enabled_provider_names
        from queueing.services import job_state_triggers_ensure
        from workers_mgmt.api import register_provider_lookup

        checks.register()
        # GET /config lists the enabled providers, which this app owns.
        register_provider_lookup(enabled_provider_names)

        # The triggers that keep the job counts of the monitor (after every migrate: SQLite drops a
        # table's triggers when a migration rebuilds it).
        post_migrate.connect(job_state_triggers_ensure, sender=self, dispatch_uid="queueing-job-counts")
