"""Worker releases: artifacts, channels with signed manifests, staged rollouts, pins, install reports.

How the pieces move is told in docs/RELEASES.md; the wire shapes are in docs/API.md.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from core.choices import TextChoices
from core.models import AppendOnlyRecord, Described, TimestampedModel

# Versions and channel names end up in the signed manifest, which both Python and Node must encode
# byte for byte alike: so they are short ASCII, nothing that JSON would escape differently.
version_validator = RegexValidator(
    r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,62}$",
    "Use 1-63 ASCII letters, digits, '.', '+', '_' or '-', starting with a letter or digit.",
)
channel_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,39}$",
    "Use 1-40 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
)


class ReleaseState(TextChoices):
    UPLOADED = "uploaded"
    SELF_TESTING = "self_testing", "Self-testing"
    READY = "ready"
    FAILED = "failed", "Failed self-test"
    REVOKED = "revoked"


class Release(Described, TimestampedModel):
    version = models.CharField(max_length=63, unique=True, validators=[version_validator])
    # The artifact's name in the storage (Django's storage API: a folder by default, S3 in DEPLOY.md).
    artifact_name = models.CharField(max_length=255, blank=True)
    archive_format = models.CharField(max_length=10, blank=True, help_text="tar.gz or zip")
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    notes = models.TextField(blank=True)
    min_agent_version = models.CharField(max_length=63, blank=True)
    entrypoint = models.CharField(max_length=255, blank=True)
    node_version = models.CharField(max_length=40, blank=True)
    chromium_version = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=12, choices=ReleaseState.choices, default=ReleaseState.UPLOADED)
    self_test_report = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    str_format = "{version} ({state})"


class Channel(Described, TimestampedModel):
    """A stream of releases (stable, beta, canary, ...) with the manifest last signed for it."""

    name = models.CharField(max_length=40, unique=True, validators=[channel_name_validator])
    current = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    previous = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Grows with every signed manifest of this channel; workers refuse a lower one (docs/RELEASES.md).
    sequence = models.BigIntegerField(default=0)
    manifest = models.JSONField(null=True, blank=True, editable=False)
    manifest_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    manifest_ttl_hours = models.PositiveIntegerField(
        default=168, help_text="A signed manifest is valid this long; the schedule re-signs it at half-life.",
    )

    class Meta:
        ordering = ["name"]

    str_format = "{name}"


class RolloutState(TextChoices):
    RUNNING = "running"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    PAUSED = "paused"
    DONE = "done"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


ACTIVE_ROLLOUT_STATES = (RolloutState.RUNNING, RolloutState.WAITING_APPROVAL, RolloutState.PAUSED)


class RolloutQuerySet(models.QuerySet["Rollout"]):
    def active(self) -> RolloutQuerySet:
        """The rollouts still under way (running, waiting for approval, paused): one a channel at most."""
        return self.filter(state__in=ACTIVE_ROLLOUT_STATES)


class Rollout(Described, TimestampedModel):
    """One release going out on one channel, step by step (docs/RELEASES.md, "The rollout model")."""

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="rollouts")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="rollouts")
    from_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    # Ranks the workers: SHA-256(salt + worker id); a new salt per rollout gives a new order.
    salt = models.CharField(max_length=32)
    steps = models.JSONField(default=list)
    gates = models.JSONField(default=dict, blank=True)
    step_index = models.PositiveIntegerField(default=0)
    step_started_at = models.DateTimeField()
    state = models.CharField(max_length=20, choices=RolloutState.choices, default=RolloutState.RUNNING)
    state_reason = models.CharField(max_length=300, blank=True)
    last_gate_result = models.JSONField(default=dict, blank=True)
    started_by = models.CharField(max_length=150, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One rollout at a time per channel: the database refuses a second active one.
            models.UniqueConstraint(fields=["channel"], condition=models.Q(state__in=ACTIVE_ROLLOUT_STATES),
                                    name="one_active_rollout_per_channel"),
        ]

    str_format = "{release.version} on {channel.name} ({state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_ROLLOUT_STATES


class TargetReason(TextChoices):
    CANARY = "canary"
    COHORT = "cohort"


class RolloutTarget(Described):
    """A worker a rollout has reached, and at which step; steps only ever add rows."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="targets")
    worker_id = models.CharField(max_length=63)
    step_index = models.PositiveIntegerField()
    reason = models.CharField(max_length=10, choices=TargetReason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rollout_id", "step_index", "worker_id"]
        constraints = [models.UniqueConstraint(fields=["rollout", "worker_id"], name="uniq_rollout_target")]

    str_format = "{worker_id} in rollout {rollout_id} ({reason})"


class WorkerPin(Described):
    """Holds one worker on one release, above every rollout and channel (docs/RELEASES.md)."""

    worker = models.OneToOneField("workers_mgmt.Worker", on_delete=models.CASCADE, primary_key=True,
                                  related_name="release_pin")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="pins")
    reason = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    str_format = "{worker_id} pinned to {release.version}"


class UpdateStage(TextChoices):
    DOWNLOADED = "downloaded"
    INSTALLED = "installed"
    SELF_TEST = "self_test", "Self-test"
    ROLLED_BACK = "rolled_back"


class WorkerReleaseStatus(models.Model):
    """What one worker said about one version: the latest of each stage, for gates and adoption."""

    worker_id = models.CharField(max_length=63)
    version = models.CharField(max_length=63)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)
    install_ok = models.BooleanField(null=True)
    self_test_ok = models.BooleanField(null=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    last_stage = models.CharField(max_length=12, choices=UpdateStage.choices)
    last_ok = models.BooleanField()
    last_details = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "worker release statuses"
        constraints = [models.UniqueConstraint(fields=["worker_id", "version"], name="uniq_worker_version")]
        indexes = [models.Index(fields=["version", "worker_id"])]

    def __str__(self) -> str:
        return f"{self.worker_id} {self.version}: {self.last_stage} {'ok' if self.last_ok else 'failed'}"

    @property
    def failed(self) -> bool:
        return self.install_ok is False or self.self_test_ok is False or self.rolled_back_at is not None


class ReleaseAuditAction(TextChoices):
    RELEASE_UPLOADED = "release_uploaded"
    RELEASE_SELF_TESTED = "release_self_tested", "Release self-tested"
    RELEASE_REVOKED = "release_revoked"
    CHANNEL_CREATED = "channel_created"
    MANIFEST_SIGNED = "manifest_signed"
    ROLLOUT_STARTED = "rollout_started"
    ROLLOUT_STEP = "rollout_step", "Rollout moved to a step"
    ROLLOUT_WAITING = "rollout_waiting", "Rollout waits for approval"
    ROLLOUT_PAUSED = "rollout_paused"
    ROLLOUT_RESUMED = "rollout_resumed"
    ROLLOUT_DONE = "rollout_done"
    ROLLOUT_ABORTED = "rollout_aborted"
    ROLLED_BACK = "rolled_back", "Channel rolled back"
    GATE_EVALUATED = "gate_evaluated", "Health gate evaluated"
    PIN_SET = "pin_set", "Worker pinned"
    PIN_CLEARED = "pin_cleared", "Worker pin cleared"


class ReleaseAuditEvent(AppendOnlyRecord):
    """The append-only trail of every release, channel and rollout change (read-only in admin).

    Names are plain text, not foreign keys, so the trail outlives what it describes.
    """

    action = models.CharField(max_length=30, choices=ReleaseAuditAction.choices)
    actor = models.CharField(max_length=150, help_text="Staff username, 'command:<user>' or 'system'.")
    channel = models.CharField(max_length=40, blank=True, db_index=True)
    version = models.CharField(max_length=63, blank=True, db_index=True)
    rollout_id_ref = models.BigIntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    # The staff change that caused this row (docs/SYSTEM_OVERVIEW.md, "Staff actions"); null for what
    # the health gates or a worker's report cause. No database constraint: either trail may be purged first.
    staff_action = models.ForeignKey("core.StaffAction", null=True, blank=True, on_delete=models.DO_NOTHING,
                                     db_constraint=False, related_name="release_audit_events")

    summary_fields = ("action", "channel", "version")
