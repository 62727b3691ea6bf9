from django.db.models.signals import post_migrate

from core import app_config


class QueueingConfig(app_config.ProjectAppConfig):
    name = "queueing"
    verbose_name = "Job queue"

    def connect(self) -> None:
        from ingestion.mentions import PrivacyField, privacy_fields_register
        from queueing.models import Job, JobAttempt
        from queueing.selectors import enabled_provider_names
        from queueing.services import job_state_triggers_ensure
        from workers_mgmt.api import register_provider_lookup

        # GET /config lists the enabled providers, which this app owns.
        register_provider_lookup(enabled_provider_names)
        # Data-subject requests search these columns for a number too (docs/PRIVACY.md).
        privacy_fields_register(
            PrivacyField(label="queueing.job.payload", model=Job, field="payload"),
            PrivacyField(label="queueing.job.last_error", model=Job, field="last_error"),
            PrivacyField(label="queueing.attempt.error", model=JobAttempt, field="error"),
            PrivacyField(label="queueing.attempt.log_tail", model=JobAttempt, field="log_tail"),
        )

        # The triggers that keep the job counts of the monitor (after every migrate: SQLite drops a
        # table's triggers when a migration rebuilds it).
        post_migrate.connect(job_state_triggers_ensure, sender=self, dispatch_uid="queueing-job-counts")
