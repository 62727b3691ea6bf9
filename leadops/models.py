"""The project's own tables: the monitor replay log, retention policies, readiness gate states."""

from django.db import models

from core.choices import TextChoices
from core.models import Described


class MonitorEvent(Described):
    """The replay log of committed monitor events: SSE `Last-Event-ID` and catch-up across processes.

    The id only grows; a schedule keeps the newest `LEADOPS_MONITOR_EVENTS_KEEP` rows.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40)
    at = models.DateTimeField()
    data = models.JSONField()

    class Meta:
        verbose_name = "monitor event"

    str_format = "{pk} {type}"

    def as_event(self) -> dict:
        return {"id": self.pk, "type": self.type, "at": self.at.isoformat(), "data": self.data}


class DataClass(TextChoices):
    """Every class of data the portal keeps, each with its own retention (docs/PRIVACY.md, "Retention")."""

    LEADS = "leads"
    FINGERPRINTS = "fingerprints", "Dedup fingerprints, per-day scope (grace after their day)"
    COUNTERS = "counters", "Hourly ingestion counters"
    ATTEMPTS = "attempts", "Finished jobs with their attempts"
    RECEIPTS = "receipts", "Report receipts (idempotency)"
    DEAD_JOBS = "dead_jobs", "Dead jobs (DLQ)"
    BREAKER_AUDIT = "breaker_audit", "Breaker transitions (audit)"
    NONCES = "nonces", "Request nonces"
    RATE_LIMIT_STATES = "rate_limit_states", "Rate-limit states (after their TAT)"
    AUTH_FAILURES = "auth_failures", "Failed authentications"
    CREDENTIAL_AUDIT = "credential_audit"
    MONITOR_EVENTS = "monitor_events", "Monitor events (replay log)"
    STAFF_AUDIT = "staff_audit", "Staff-action audit"
    ALERT_HISTORY = "alert_history", "Alert history and deliveries"
    EVIDENCE = "evidence", "Failure screenshots and log tails (evidence)"


class RetentionPolicy(models.Model):
    """How many days one data class is kept; the defaults are in leadops/retention.py and docs/PRIVACY.md.

    A row per class is created after migrate; staff edit `days` in admin (audited). Blank `days`
    keeps the class forever.
    """

    data_class = models.CharField(max_length=32, choices=DataClass.choices, unique=True)
    days = models.PositiveIntegerField(null=True, blank=True,
                                       help_text="Days to keep; empty keeps this class forever.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policies"
        ordering = ["data_class"]

    def __str__(self) -> str:
        return f"{self.get_data_class_display()}: {self.days if self.days is not None else 'forever'}"


class ReadinessGateState(models.Model):
    """What a Go/No-Go gate said when last recorded, and when it last held (docs/PRODUCTION_READINESS.md).

    The alert `readiness_lost` fires for a gate that held once and does not hold now.
    """

    name = models.CharField(primary_key=True, max_length=40)
    ok = models.BooleanField()
    why = models.CharField(max_length=500)
    held_at = models.DateTimeField(null=True, blank=True, help_text="When the gate last held.")
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name = "readiness gate state"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {'go' if self.ok else 'no-go'}"
