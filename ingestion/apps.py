from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Leads"

    def ready(self) -> None:
        from ingestion import checks
        from ingestion.mentions import privacy_fields_register
        from ingestion.privacy import lead_privacy_fields

        checks.register()
        # Data-subject requests search these columns of leads for the number in text.
        privacy_fields_register(*lead_privacy_fields())
