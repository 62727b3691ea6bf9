from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Leads"

    def ready(self) -> None:
        from ingestion import checks

        checks.register()
