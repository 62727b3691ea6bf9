"""The fleet: workers, their credentials, the nonces they used, and their central config."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from core.choices import TextChoices
from core.models import AuditRecord, Described, TimestampedModel

worker_id_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "Use 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
)


def default_rate_limit() -> int:
    return settings.LEADOPS_DEFAULT_RATE_LIMIT_PER_MIN


class Worker(Described, TimestampedModel):
    id = models.CharField(primary_key=True, max_length=63, validators=[worker_id_validator])
    name = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    channel = models.CharField(max_length=40, default="stable")
    rate_limit_per_min = models.PositiveIntegerField(
        default=default_rate_limit, validators=[MinValueValidator(1)],
        help_text="Signed requests accepted per minute (GCRA, shared by all server processes).",
    )
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Liveness: the last signed request of any kind (a heartbeat, a pull, an exchange, a report), kept
    # to within LEADOPS_LIVENESS_REFRESH_S. The monitor, the alerts and the release gates read this;
    # last_heartbeat_at dates what the worker last said about itself (version, status).
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reported_version = models.CharField(max_length=64, blank=True)
    reported_status = models.CharField(max_length=32, blank=True)
    running_jobs = models.PositiveIntegerField(default=0)
    last_metrics = models.JSONField(default=dict, blank=True)
    # The heartbeat's `self_test`: what the worker's own check of its install said; the release
    # health gates read it (docs/RELEASES.md, "Health gates").
    last_self_test = models.JSONField(null=True, blank=True)
    last_ip = models.GenericIPAddressField(null=True, blank=True)
    notes = models.TextField(blank=True)
    # Moves with every change that decides how this worker's requests are judged (its keys, enabled,
    # rate limit): a server process uses its copy of the worker's credential only while this is
    # unchanged (workers_mgmt/credential_cache.py, docs/DEPLOY.md "The credential copy").
    credential_generation = models.BigIntegerField(default=0, editable=False)

    # A verified worker is the DRF `request.user` of a signed request; these let permission
    # classes ask it the questions they ask a user.
    is_authenticated = True
    is_anonymous = False
    is_staff = False

    class Meta:
        ordering = ["id"]

    str_format = "{id}"


class CredentialState(TextChoices):
    PENDING = "pending"
    CURRENT = "current"
    PREVIOUS = "previous", "Previous (grace)"
    REVOKED = "revoked"


class WorkerCredential(Described, TimestampedModel):
    key_id = models.CharField(primary_key=True, max_length=40)
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="credentials")
    # Fernet token of the secret; the plain secret is shown once when created and never stored.
    secret_encrypted = models.TextField(editable=False)
    state = models.CharField(max_length=10, choices=CredentialState.choices)
    grace_until = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["worker_id", "-created_at"]
        indexes = [models.Index(fields=["worker", "state"])]
        constraints = [
            # One rotation per worker at a time: the database refuses a second pending key.
            models.UniqueConstraint(fields=["worker"], condition=models.Q(state="pending"),
                                    name="one_pending_credential_per_worker"),
        ]

    str_format = "{key_id} ({state})"


class RequestNonce(Described):
    """A nonce seen from a worker; the unique constraint is what refuses a replay."""

    worker_id = models.CharField(max_length=63)
    nonce = models.CharField(max_length=128)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["worker_id", "nonce"], name="uniq_worker_nonce")]

    str_format = "{worker_id}:{nonce}"


class WorkerConfig(Described):
    """The fleet-wide worker configuration served by GET /config (one row)."""

    poll_interval_s = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    heartbeat_interval_s = models.PositiveIntegerField(default=30, validators=[MinValueValidator(5)])
    max_batch = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    report_chunk_leads = models.PositiveIntegerField(default=200, validators=[MinValueValidator(1)])
    update_check_interval_s = models.PositiveIntegerField(
        default=300, help_text="A fallback: workers also check at once when a heartbeat names a new release.",
    )
    # Tuning: how long a pull may wait for work, and the payload limits workers obey.
    long_poll_wait_s = models.PositiveIntegerField(
        default=30, validators=[MaxValueValidator(30)],
        help_text="Longest a pull with wait_s waits for a job (0: pulls never wait). A waiting pull holds "
                  "no thread and no database connection; 30 s keeps an idle worker at 2 requests a minute.",
    )
    max_leads_per_report = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(1)],
        help_text="Leads accepted in one report (never above LEADOPS_MAX_LEADS_PER_REPORT).",
    )
    max_body_bytes = models.PositiveIntegerField(
        default=5 * 1024 * 1024, validators=[MinValueValidator(1024)],
        help_text="Largest request body a worker sends (never above LEADOPS_MAX_BODY_BYTES).",
    )
    extra = models.JSONField(default=dict, blank=True, help_text="Free-form settings passed to workers.")
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "worker configuration"
        verbose_name_plural = "worker configuration"

    str_format = "Worker configuration v{version}"


class DeliveryMode(TextChoices):
    PUSH = "push", "Push (next heartbeat)"
    MANUAL = "manual", "Manual (shown once to staff)"


class CredentialRotation(Described):
    """How a pending credential reaches its worker and how long the key it replaces stays valid.

    One row per pending credential, written with it; kept after promotion as the rotation's record.
    """

    credential = models.OneToOneField(WorkerCredential, on_delete=models.CASCADE, primary_key=True,
                                      related_name="rotation")
    mode = models.CharField(max_length=10, choices=DeliveryMode.choices, default=DeliveryMode.PUSH)
    grace_seconds = models.PositiveIntegerField(default=24 * 3600)
    delivered_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    str_format = "rotation to {credential_id} ({mode})"


class CredentialEventKind(TextChoices):
    CREATED = "created"
    DELIVERED = "delivered"
    VERIFIED = "verified"
    PROMOTED = "promoted"
    EXPIRED = "expired"
    REVOKED = "revoked"
    AUTH_FAILED = "auth_failed", "Authentication failed"
    ENROLLMENT_ISSUED = "enrollment_issued", "Enrollment token issued"
    ENROLLED = "enrolled"


class CredentialEvent(AuditRecord):
    """The append-only audit trail of worker credentials.

    `worker_id` is plain text, not a foreign key: a failed authentication names whatever worker the
    caller claimed, which may not exist, and the trail must outlive a deleted worker. Failed
    authentications are aggregated: one row per worker, reason and minute, whose `count` grows; on
    PostgreSQL a trigger refuses every other UPDATE and every DELETE (migration 0001_squashed_0008).
    """

    worker_id = models.CharField(max_length=63, db_index=True)
    key_id = models.CharField(max_length=40, blank=True)
    kind = models.CharField(max_length=20, choices=CredentialEventKind.choices)
    reason = models.CharField(max_length=60, blank=True)
    actor = models.CharField(max_length=150, blank=True,
                             help_text="Staff username, 'worker', 'system' or 'enrollment'.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    # The start of the minute an auth_failed row counts; null for every other kind.
    minute = models.DateTimeField(null=True, blank=True)
    count = models.PositiveIntegerField(default=1)
    # The staff change that caused this row (docs/SYSTEM_OVERVIEW.md, "Staff actions"); null for what
    # a worker or the schedule causes itself. No database constraint: either trail may be purged first.
    staff_action = models.ForeignKey("core.StaffAction", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="credential_events")

    summary_fields = ("worker_id", "kind")

    class Meta(AuditRecord.Meta):
        constraints = [
            models.UniqueConstraint(fields=["worker_id", "reason", "minute"],
                                    condition=models.Q(kind="auth_failed"),
                                    name="uniq_auth_failed_per_minute"),
        ]


class EnrollmentToken(Described):
    """A one-time token a new worker exchanges for its credential; only its SHA-256 is stored."""

    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="enrollment_tokens")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    str_format = "enrollment of {worker_id} (expires {expires_at:%Y-%m-%d %H:%M})"


class WorkerOfflineNotice(Described):
    """The overdue heartbeat a `worker.offline` event was published for: one event per transition.

    A worker's silent streak is named by its last heartbeat time; a row that already holds that time
    means the offline event for this streak went out.
    """

    worker_id = models.CharField(primary_key=True, max_length=63)
    last_heartbeat_at = models.DateTimeField(null=True)
    announced_at = models.DateTimeField()

    class Meta:
        verbose_name = "worker offline notice"
        # Created by the leadops app before worker presence moved here; the table keeps its name.
        db_table = "leadops_workerofflinenotice"

    str_format = "{worker_id} silent since {last_heartbeat_at}"
