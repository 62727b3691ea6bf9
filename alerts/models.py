"""Alerting: rules, alert states and their timeline, silences, routes, receivers, notifications.

The model is Prometheus Alertmanager's, inside the portal (docs/SYSTEM_OVERVIEW.md, "Alerts"):
a rule's condition makes an alert (identity: its labels' fingerprint) pending, then firing, then
resolved; firing alerts are routed to receivers and grouped, each group is flushed after its group
wait, and a notification goes out only when the group changed or its repeat interval passed.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.choices import TextChoices
from core.models import Described, TimestampedModel


class RuleKind(TextChoices):
    HEARTBEAT_MISSING = "heartbeat_missing", "Heartbeat missing (per worker)"
    ERROR_RATE = "error_rate", "Error rate (per provider and per worker)"
    RETRY_SPIKE = "retry_spike", "Retry spike (per provider)"
    DLQ_GROWTH = "dlq_growth", "Dead-letter queue growth (per provider)"
    STUCK_JOBS = "stuck_jobs", "Stuck jobs (per provider)"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open (provider or worker)"
    ZERO_RESULTS = "zero_results", "Zero results (per provider)"
    READINESS_LOST = "readiness_lost", "Readiness lost (per Go/No-Go gate)"
    DLQ_PURGE_DUE = "dlq_purge_due", "Dead jobs about to be purged by retention (per provider)"
    DSR_DUE_SOON = "dsr_due_soon", "Data-subject request due soon (per request)"
    BREACH_DEADLINE = "breach_deadline", "Breach not notified 48 h / 72 h after discovery (per incident)"


def rule_name(kind: str) -> str:
    """The name an operator reads for a rule kind: "Circuit breaker open", never "breaker_open"."""
    try:
        return str(RuleKind(kind).label).split(" (")[0]
    except ValueError:
        return kind


class Severity(TextChoices):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class AlertRule(TimestampedModel):
    """One built-in rule: its threshold, how long the condition must hold, severity and extra labels."""

    kind = models.CharField(max_length=32, choices=RuleKind.choices, unique=True)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(help_text="What the condition compares with (see docs/RUNBOOK.md, Alerts).")
    for_seconds = models.PositiveIntegerField(
        default=0, help_text="The condition must hold this long before the alert fires (pending until then)."
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    labels = models.JSONField(default=dict, blank=True, help_text="Extra labels added to every alert.")
    # Stamped by every evaluation round, so readiness can tell that an evaluator is running.
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return rule_name(self.kind)


class AlertState(TextChoices):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(TimestampedModel):
    """One alert instance, identified by the fingerprint of its labels (rule + labels)."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    fingerprint = models.CharField(max_length=16, unique=True)
    labels = models.JSONField()
    annotations = models.JSONField(default=dict)
    state = models.CharField(max_length=10, choices=AlertState.choices)
    value = models.FloatField(null=True, blank=True)
    # When the condition was first seen in this streak (the start of `pending`); delivery latency is
    # measured from here.
    active_since = models.DateTimeField()
    starts_at = models.DateTimeField(null=True, blank=True, help_text="When it started firing.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="When it resolved.")
    last_evaluated_at = models.DateTimeField()
    # What the failed attempts behind it have in common (alerts/evidence.py), refreshed every round.
    evidence = models.JSONField(default=dict, blank=True)
    # Acknowledged: no repeat notifications while its change class stays `acknowledged_class`
    # (alerts/evidence.py, `change_class`); cleared when it resolves or changes (docs/RUNBOOK.md).
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    acknowledged_class = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["state", "rule"], name="alert_state_rule_idx")]

    def __str__(self) -> str:
        return f"{rule_name(self.labels.get('alertname', '?'))} {self.fingerprint} ({self.state})"


class AlertEvent(Described):
    """The timeline of one alert: its state changes and the notifications that carried it."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField()
    kind = models.CharField(max_length=20)
    detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]

    str_format = "{at:%Y-%m-%d %H:%M:%S} {kind}"


class Silence(TimestampedModel):
    """Mutes alerts whose labels match every matcher, between starts_at and ends_at.

    With weekdays set it is a recurring maintenance window: active only on those local weekdays
    (TIME_ZONE; 0 is Monday) between hour_start and hour_end, within starts_at..ends_at. An end at or
    before the start crosses midnight: the window opens on its weekday and closes the next morning.
    """

    matchers = models.JSONField(help_text='A list of {"name", "op", "value"}; op is =, !=, =~ or !~.')
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    created_by = models.CharField(max_length=150)
    comment = models.TextField()
    weekdays = models.JSONField(default=list, blank=True)
    hour_start = models.PositiveSmallIntegerField(null=True, blank=True)
    hour_end = models.PositiveSmallIntegerField(null=True, blank=True)
    expired_early_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-ends_at", "-id"]
        indexes = [models.Index(fields=["ends_at"], name="silence_ends_idx")]

    def __str__(self) -> str:
        text = ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in self.matchers)
        return f"silence {self.pk}: {text}"


class ReceiverKind(TextChoices):
    EMAIL = "email"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams (Workflows webhook)"
    WEBHOOK = "webhook", "Webhook (Alertmanager JSON, signed)"
    ALERTMANAGER = "alertmanager", "Alertmanager (POST /api/v2/alerts)"
    # make run's local receiver: keeps what Slack, Teams and email would receive (Admin › Demo inbox).
    DEMO = "demo", "Demo inbox (development: what Slack, Teams and email would receive)"


class Receiver(Described, TimestampedModel):
    """Where notifications go. Webhook URLs and signing secrets are credentials: stored encrypted."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=ReceiverKind.choices)
    url_encrypted = models.TextField(blank=True, editable=False)
    url_hint = models.CharField(
        max_length=120, blank=True, editable=False, help_text="Scheme and host of the URL, for display."
    )
    secret_encrypted = models.TextField(blank=True, editable=False)
    addresses = models.TextField(blank=True, help_text="Email addresses, comma-separated.")
    send_resolved = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    # The earliest moment the next message may leave (Slack: at most one a second per webhook, and
    # later after a 429 with Retry-After). Moved under a row lock by every sender.
    next_send_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    str_format = "{name}"


class Route(Described, TimestampedModel):
    """One node of the route tree: alerts matching its matchers go to its receiver.

    Top-level routes (no parent) are tried in `position` order, depth first; the first match wins
    unless it says `continue_matching`. Empty settings are inherited from the parent (defaults at the
    top). An alert no route matches goes to every enabled receiver, as when there are no routes.
    """

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=100)
    matchers = models.JSONField(
        default=list, blank=True, help_text='A list of {"name", "op", "value"}; empty matches every alert.'
    )
    receiver = models.ForeignKey(
        Receiver,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="routes",
        help_text="Empty: the parent's receiver.",
    )
    continue_matching = models.BooleanField(default=False)
    group_by = models.JSONField(
        null=True, blank=True, help_text='Label names, e.g. ["alertname"]; empty: inherit.'
    )
    group_wait_s = models.PositiveIntegerField(null=True, blank=True)
    group_interval_s = models.PositiveIntegerField(null=True, blank=True)
    repeat_interval_s = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["parent_id", "position", "id"]

    str_format = "{name}"


class AlertGroup(TimestampedModel):
    """Alerts of one receiver that share the group labels, and what was last sent for them.

    `last_firing` / `last_resolved` (fingerprints) are Alertmanager's notification log: they change
    only when a notification was delivered, and decide whether the next flush sends anything.
    """

    receiver = models.ForeignKey(Receiver, on_delete=models.CASCADE, related_name="groups")
    route = models.ForeignKey(Route, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    group_key = models.CharField(max_length=64)
    group_labels = models.JSONField(default=dict)
    next_flush_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    last_firing = models.JSONField(default=list)
    last_resolved = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["receiver", "group_key"], name="uniq_alert_group")]
        indexes = [
            models.Index(
                fields=["next_flush_at"],
                name="alertgroup_flush_idx",
                condition=Q(next_flush_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        labels = ", ".join(rule_name(value) if name == "alertname" else f"{name}={value}"
                           for name, value in sorted(self.group_labels.items()))
        return f"{self.receiver}: {labels or 'all alerts'}"


class NotificationStatus(TextChoices):
    PENDING = "pending", "Pending (waiting for its next attempt)"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed", "Failed (gave up)"


class Notification(Described):
    """One message to one receiver about one group, delivered with retries."""

    group = models.ForeignKey(AlertGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    receiver = models.ForeignKey(Receiver, on_delete=models.CASCADE, related_name="notifications")
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    is_test = models.BooleanField(default=False)
    summary = models.CharField(max_length=300)
    # Why it was sent: first, new (more alerts fire), resolved, or repeat (the repeat interval passed).
    reason = models.CharField(max_length=10, blank=True)
    # The alerts it names (an alert's notification history in admin).
    alerts = models.ManyToManyField(Alert, blank=True, related_name="notifications")
    # Everything a notifier needs, frozen when the group was flushed (a retry sends the same message).
    message = models.JSONField()
    firing = models.JSONField(default=list)
    resolved = models.JSONField(default=list)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    give_up_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    # The earliest condition among its alerts: delivery latency is measured from it.
    condition_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx")]

    str_format = "notification {pk} to {receiver_id} ({status})"


class DeliveryAttempt(models.Model):
    """One try to deliver a notification (append-only): what the receiver answered and how fast."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    receiver = models.ForeignKey(Receiver, on_delete=models.CASCADE, related_name="+")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    retry_after_s = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of notification {self.notification_id}: {'ok' if self.ok else 'error'}"


class DemoMessage(Described):
    """What a demo receiver was sent, rendered as Slack, Teams and email would have received it.

    The local receiver of `make run` (docs/RUNBOOK.md, "The demo"): a newcomer sees a notification
    arrive without a real Slack, Teams or mail server. Development only (`ReceiverKind.DEMO`).
    """

    receiver = models.ForeignKey(Receiver, on_delete=models.CASCADE, related_name="demo_messages")
    created_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=10)
    summary = models.CharField(max_length=300)
    slack = models.JSONField(help_text="The Slack incoming-webhook body.")
    teams = models.JSONField(help_text="The Teams Workflows body (an Adaptive Card).")
    email_subject = models.CharField(max_length=300)
    email_body = models.TextField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "demo inbox message"
        verbose_name_plural = "demo inbox"

    str_format = "{summary}"
