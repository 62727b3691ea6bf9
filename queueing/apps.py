from django.apps import AppConfig


class QueueingConfig(AppConfig):
    name = "queueing"
    verbose_name = "Job queue"

    def ready(self) -> None:
        from queueing.selectors import enabled_provider_names
        from workers_mgmt.api import register_provider_lookup

        # GET /config lists the enabled providers, which this app owns.
        register_provider_lookup(enabled_provider_names)
