"""The job queue: providers and their policy, campaigns, jobs, attempts, report receipts."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from core.choices import TextChoices
from core.models import Described, TimestampedModel
from queueing.schedule import schedule_validator

provider_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]{0,62}$", "Use lower-case letters, digits, '.', '-' or '_'."
)


class Provider(Described, TimestampedModel):
    """A lead source (a maps site, a directory) and the queue policy of its jobs."""

    name = models.CharField(max_length=63, unique=True, validators=[provider_name_validator])
    enabled = models.BooleanField(default=True, help_text="Disabled providers hand out no jobs.")
    max_attempts = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    backoff_base_s = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    backoff_cap_s = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)])
    lease_seconds = models.PositiveIntegerField(
        default=120, validators=[MinValueValidator(5), MaxValueValidator(12 * 3600)]
    )
    # Quota (GCRA, enforced inside the claim): empty means unlimited.
    quota_per_min = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Jobs handed out per minute on average (empty: no rate limit).",
    )
    quota_burst = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Jobs that may be handed out at once."
    )
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Jobs handed out per local day (TIME_ZONE midnight); empty: no cap.",
    )
    # Circuit breaker policy (docs/SYSTEM_OVERVIEW.md, "Semantics" defaults).
    breaker_failure_pct = models.PositiveSmallIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Open when at least this share of outcomes in the window failed.",
    )
    breaker_min_outcomes = models.PositiveIntegerField(default=20, validators=[MinValueValidator(1)])
    breaker_window_s = models.PositiveIntegerField(default=300, validators=[MinValueValidator(10)])
    breaker_cooldown_s = models.PositiveIntegerField(default=120, validators=[MinValueValidator(1)])
    breaker_probes = models.PositiveSmallIntegerField(default=3, validators=[MinValueValidator(1)])

    class Meta:
        ordering = ["name"]

    str_format = "{name}"


class Campaign(Described, TimestampedModel):
    """Search work for one provider: every query in every city becomes one job."""

    name = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="campaigns")
    queries = models.TextField(help_text="One search query per line.")
    cities = models.TextField(help_text="One city per line.")
    priority = models.SmallIntegerField(default=0, help_text="Higher runs first.")
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    jobs_created = models.PositiveIntegerField(default=0, editable=False)
    # Recurring campaigns (docs/RUNBOOK.md, "Recurring campaigns"): each due time enqueues the
    # queries x cities again as a new CampaignRun, unless the previous run is still going.
    schedule = models.CharField(
        max_length=100, blank=True, validators=[schedule_validator],
        help_text='Empty: run once. "every N hours" (e.g. "every hour", "every 6 hours"), or a cron '
                  'expression in the portal\'s time zone (e.g. "0 6 * * *": every day at 06:00).',
    )
    schedule_paused = models.BooleanField(default=False, editable=False)
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["-created_at"]

    str_format = "{name}"

    def query_list(self) -> list[str]:
        return [line.strip() for line in self.queries.splitlines() if line.strip()]

    def city_list(self) -> list[str]:
        return [line.strip() for line in self.cities.splitlines() if line.strip()]


class CampaignRunTrigger(TextChoices):
    MANUAL = "manual", "Enqueued by staff"
    SCHEDULE = "schedule"


class CampaignRun(Described):
    """One enqueueing of a campaign's work (or a due time skipped because the last run was going)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=10, choices=CampaignRunTrigger.choices)
    # The due time it answers (the schedule's instant, not when the tick happened to run).
    scheduled_for = models.DateTimeField()
    created_at = models.DateTimeField()
    jobs_created = models.PositiveIntegerField(default=0)
    skipped = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-campaign_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="uniq_campaign_run_number"),
        ]

    str_format = "run {number} of campaign {campaign_id}"


class JobState(TextChoices):
    QUEUED = "queued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


FINISHED_STATES = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


class Job(Described, TimestampedModel):
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="jobs")
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    # Indexed with the state below (a run's progress, "is the last run still going?").
    campaign_run = models.ForeignKey(
        CampaignRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs", db_index=False
    )
    payload = models.JSONField(default=dict, blank=True)
    priority = models.SmallIntegerField(default=0)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    run_at = models.DateTimeField()
    # Attempts that counted against max_attempts (a released lease gives its attempt back).
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    current_attempt_id = models.UUIDField(null=True, blank=True)
    leased_by = models.ForeignKey(
        "workers_mgmt.Worker", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    dead_reason = models.CharField(max_length=40, blank=True)
    leads_added = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The claim reads the head of the ready queue in exactly this order.
            models.Index(
                models.F("priority").desc(), "run_at", "id",
                name="job_ready_idx", condition=Q(state="queued"),
            ),
            # The reaper scans leases by expiry.
            models.Index(fields=["lease_expires_at"], name="job_lease_idx", condition=Q(state="leased")),
            models.Index(fields=["state", "provider"], name="job_state_provider_idx"),
            models.Index(fields=["campaign", "state"], name="job_campaign_state_idx"),
            models.Index(fields=["campaign_run", "state"], name="job_campaign_run_state_idx"),
            models.Index(fields=["finished_at"], name="job_finished_idx"),
        ]

    str_format = "job {pk} ({state})"


class AttemptState(TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost", "Lease lost"
    RELEASED = "released"
    CANCELLED = "cancelled"


class JobAttempt(Described):
    """One lease of a job by one worker; its id is the attempt_id of the protocol."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveSmallIntegerField()
    worker = models.ForeignKey("workers_mgmt.Worker", null=True, on_delete=models.SET_NULL, related_name="+")
    state = models.CharField(max_length=10, choices=AttemptState.choices, default=AttemptState.RUNNING)
    claimed_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    reports = models.PositiveIntegerField(default=0)
    leads_added = models.PositiveIntegerField(default=0)
    leads_duplicates = models.PositiveIntegerField(default=0)
    leads_invalid = models.PositiveIntegerField(default=0)
    # The last lines of the worker's own log for this attempt, as its report sent them, with phone
    # numbers and e-mail addresses masked before they were stored (docs/PRIVACY.md, "Evidence").
    log_tail = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-claimed_at"]
        indexes = [
            models.Index(fields=["job", "claimed_at"]),
            models.Index(fields=["finished_at", "worker"], name="attempt_finished_idx"),
        ]

    str_format = "attempt {number} of job {job_id}"


class ReportReceipt(Described):
    """The first answer to a report, kept under its Idempotency-Key (scoped to the worker)."""

    worker_id = models.CharField(max_length=63)
    idempotency_key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    response = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["worker_id", "idempotency_key"], name="uniq_report_key")
        ]

    str_format = "{worker_id}:{idempotency_key}"


class DeadJob(Job):
    """The dead-letter queue: jobs that ran out of attempts or failed for good."""

    class Meta:
        proxy = True
        verbose_name = "dead job"
        verbose_name_plural = "dead jobs (DLQ)"


class ProviderQuotaState(Described):
    """A provider's quota bookkeeping: its GCRA arrival time and today's count (row-locked by claims)."""

    provider = models.OneToOneField(Provider, primary_key=True, on_delete=models.CASCADE,
                                    related_name="quota_state")
    tat = models.FloatField(default=0.0, help_text="GCRA theoretical arrival time (epoch seconds).")
    day = models.DateField(null=True, blank=True)
    day_count = models.PositiveIntegerField(default=0)

    str_format = "quota state of provider {provider_id}"


class BreakerScope(TextChoices):
    PROVIDER = "provider"
    WORKER = "worker"


class BreakerState(TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open", "Half-open"


class BreakerKeyed(models.Model):
    """A row about one breaker: a provider's (key: its name) or a worker's (key: its id)."""

    scope = models.CharField(max_length=10, choices=BreakerScope.choices)
    key = models.CharField(max_length=63)

    class Meta:
        abstract = True


class Breaker(BreakerKeyed):
    """One circuit breaker (a provider's or a worker's); a missing row means closed."""

    state = models.CharField(max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED)
    opened_at = models.DateTimeField(null=True, blank=True)
    # OPEN: when it may turn half-open. CLOSED/HALF_OPEN: outcomes before this do not count.
    retry_at = models.DateTimeField(null=True, blank=True)
    counting_since = models.DateTimeField(null=True, blank=True)
    probes_left = models.PositiveIntegerField(default=0)
    probes_succeeded = models.PositiveIntegerField(default=0)
    forced = models.BooleanField(default=False, help_text="Held in this state by staff.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "key"]
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="uniq_breaker")]
        indexes = [models.Index(fields=["state"], name="breaker_state_idx")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.state}"


class BreakerOutcome(BreakerKeyed):
    """Outcomes of one breaker in one time bucket, upserted by reports (shared by all processes)."""

    bucket = models.DateTimeField()
    # A provider's bucket is spread over rows by database connection (queueing/services/breakers.py);
    # readers sum them.
    shard = models.PositiveSmallIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "bucket", "shard"],
                                    name="uniq_breaker_bucket_shard")
        ]
        # For the purge of old buckets; a bucket row is inserted once and then only counted up.
        indexes = [models.Index(fields=["bucket"], name="queueing_breakeroutcome_bucket")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} @ {self.bucket}"


class BreakerTransition(BreakerKeyed):
    """Audit row of every breaker change (append-only)."""

    from_state = models.CharField(max_length=10, choices=BreakerState.choices)
    to_state = models.CharField(max_length=10, choices=BreakerState.choices)
    reason = models.CharField(max_length=200)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.from_state} -> {self.to_state}"


class EvidenceType(TextChoices):
    PNG = "image/png", "PNG"
    JPEG = "image/jpeg", "JPEG"


class AttemptEvidence(Described):
    """A screenshot a worker took during an attempt (docs/API.md, "Evidence"); the file is in storage.

    The attempt link is SET_NULL rather than CASCADE: pruning finished jobs must not orphan stored
    files, so a row outlives its attempt until `evidence_purge` removes the row and its file together.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    attempt = models.ForeignKey(JobAttempt, null=True, on_delete=models.SET_NULL, related_name="evidence")
    # Beside the attempt link so the DLQ's "has evidence" filter needs no join through attempts.
    job = models.ForeignKey(Job, null=True, on_delete=models.SET_NULL, related_name="evidence")
    storage_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=20, choices=EvidenceType.choices)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "attempt evidence"
        verbose_name_plural = "attempt evidence"

    str_format = "evidence {id} ({content_type}, {size} bytes)"


class JobStateCount(Described):
    """Jobs per (provider, state) as signed deltas, kept by database triggers on the job table.

    Every statement that inserts, deletes or moves jobs between states or providers adds its deltas
    here in the same statement (queueing/services/counts.py installs the triggers), so the monitor
    reads a few hundred rows instead of counting every job. The sum per (provider, state) is the
    count; a schedule folds the rows into one per pair, and a reconcile recounts from the jobs.
    """

    id = models.BigAutoField(primary_key=True)
    # A plain column, not a foreign key: a deleted provider's jobs leave their -1s behind harmlessly.
    provider_id = models.BigIntegerField()
    state = models.CharField(max_length=10)
    delta = models.BigIntegerField()

    class Meta:
        verbose_name = "job state count"

    str_format = "provider {provider_id} {state} {delta:+d}"
