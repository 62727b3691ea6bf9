from core import app_config


class IngestionConfig(app_config.ProjectAppConfig):
    name = "ingestion"
    verbose_name = "Leads"

    def connect(self) -> None:
        from ingestion.mentions import privacy_fields_register
        from ingestion.privacy import lead_privacy_fields

        # Data-subject requests search these columns of leads for the number in text.
        privacy_fields_register(*lead_privacy_fields())
