from django.db.models.signals import post_migrate

from core import app_config


class LeadopsConfig(app_config.ProjectAppConfig):
    name = "leadops"
    # What it holds in admin: the retention policy of every data class.
    verbose_name = "Data retention"

    def connect(self) -> None:
        from alerts.rules import register_readiness_reader
        from core import events
        from leadops.live_publish import live_sink
        from leadops.readiness import readiness_lost
        from leadops.retention import dead_job_retention_days, retention_policies_ensure
        from leadops.schedules import ensure_schedules
        from leadops.services import monitor_events_store
        from queueing.selectors import dead_job_retention_register

        # The outbox: events are written in the publishing transaction; the sink pushes them after.
        events.store_register(monitor_events_store)
        events.batch_sink_register(live_sink)
        # Alerts may not import the project package: the readiness_lost rule gets its reader here.
        register_readiness_reader(readiness_lost)
        # Queueing may not import the project package either: the DLQ learns its retention days here.
        dead_job_retention_register(dead_job_retention_days)

        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="leadops-schedules")
        post_migrate.connect(retention_policies_ensure, sender=self, dispatch_uid="leadops-retention")
