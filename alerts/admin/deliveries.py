"""Admin of notifications and their delivery attempts: the read-only log."""

from __future__ import annotations

from django.contrib import admin

from alerts.models import (
    DeliveryAttempt,
    Notification,
)
from core.admin_tools import ReadOnlyMixin, ReadOnlyModelAdmin


class DeliveryAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = (
        "number", "started_at", "ok", "status_code", "latency_ms", "retry_after_s", "error")
    extra = 0


@admin.register(Notification)
class NotificationAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "summary",
        "receiver",
        "reason",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "latency",
    ]
    list_filter = ["status", "reason", "receiver", "is_test"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    fields = readonly_fields = (
        "summary",
        "receiver",
        "reason",
        "status",
        "is_test",
        "attempts",
        "condition_at",
        "created_at",
        "delivered_at",
        "next_attempt_at",
        "give_up_at",
        "message",
    )

    @admin.display(description="condition -> delivered")
    def latency(self, notification: Notification) -> str:
        if notification.delivered_at and notification.condition_at:
            return f"{(notification.delivered_at - notification.condition_at).total_seconds():.1f} s"
        return "-"


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyModelAdmin):
    list_display = fields = readonly_fields = (
        "started_at",
        "receiver",
        "notification",
        "number",
        "ok",
        "status_code",
        "latency_ms",
        "retry_after_s",
        "error",
    )
    list_filter = ["ok", "receiver"]
    date_hierarchy = "started_at"
