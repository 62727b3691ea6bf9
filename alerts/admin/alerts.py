"""Admin of alerts: labels, state and timeline, read-only; one click silences an alert."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from alerts.admin import alert_pages
from alerts.admin.common import badge_html, labels_html, post_button
from alerts.evidence import LINK_TITLES, alert_links, evidence_lines
from alerts.models import (
    Alert,
    AlertEvent,
    AlertState,
    rule_name,
)
from alerts.services import (
    silence_from_alert,
)
from core.admin_tools import ReadOnlyMixin, ReadOnlyModelAdmin, admin_url, field_display
from core.audit import Actor


class AlertEventInline(ReadOnlyMixin, admin.TabularInline):
    model = AlertEvent
    fields = readonly_fields = ("at", "kind", "detail")
    extra = 0
    verbose_name_plural = "timeline"


@admin.register(Alert)
class AlertAdmin(ReadOnlyModelAdmin):
    list_display = [
        "alertname",
        "state_badge",
        "labels_text",
        "summary",
        "starts_at",
        "ends_at",
        "acknowledged",
        "silence_link",
    ]
    list_filter = ["state", "rule"]
    search_fields = ["fingerprint"]
    date_hierarchy = "updated_at"
    inlines = [AlertEventInline]
    fields = readonly_fields = (
        "alertname",
        "state_badge",
        "labels_text",
        "annotations",
        "value",
        "fingerprint",
        "active_since",
        "starts_at",
        "ends_at",
        "last_evaluated_at",
        "acknowledged",
        "evidence_text",
        "links",
        "one_click",
    )
    actions = ["silence_selected"]

    @admin.display(description="alert")
    def alertname(self, alert: Alert) -> str:
        # The rule's name; the raw label (alertname=breaker_open) stays in the labels column for matchers.
        return rule_name(alert.labels.get("alertname", ""))

    state_badge = field_display("state", description="state", render=badge_html, ordering="state")
    labels_text = field_display("labels", description="labels", render=labels_html)

    @admin.display(description="summary")
    def summary(self, alert: Alert) -> str:
        return alert.annotations.get("summary", "")

    @admin.display(description="acknowledged")
    def acknowledged(self, alert: Alert) -> str:
        if alert.acknowledged_at is None:
            return "-"
        return f"by {alert.acknowledged_by} at {timezone.localtime(alert.acknowledged_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="evidence")
    def evidence_text(self, alert: Alert) -> str:
        lines = evidence_lines(alert.evidence)
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines)) if lines else "-"

    @admin.display(description="pages")
    def links(self, alert: Alert) -> str:
        pages = [(reverse("admin:alerts_alert_history", args=[alert.pk]), "notification history")]
        if alert.state == AlertState.FIRING:
            pages.append((reverse("admin:alerts_alert_acknowledge", args=[alert.pk]), "acknowledge…"))
        evidence_pages = alert_links(alert_id=alert.pk, evidence=alert.evidence)
        pages += [(evidence_pages[key], LINK_TITLES[key].lower()) for key in ("screenshot", "log_tail")
                  if key in evidence_pages]
        return format_html_join(" · ", '<a href="{}">{}</a>', pages)

    @admin.display(description="")
    def silence_link(self, alert: Alert) -> str:
        if alert.state == AlertState.RESOLVED:
            return ""
        return format_html('<a href="{}">silence…</a>', reverse("admin:alerts_alert_change", args=[alert.pk]))

    @admin.display(description="actions")
    def one_click(self, alert: Alert) -> str:
        if alert.state == AlertState.RESOLVED:
            return "-"
        return post_button(
            reverse("admin:alerts_alert_silence", args=[alert.pk]), "Silence this alert for 2 hours"
        )

    def get_urls(self) -> list[Any]:
        pages = [("acknowledge/", alert_pages.acknowledge_view, "alerts_alert_acknowledge"),
                 ("silence-1h/", alert_pages.silence_hour_view, "alerts_alert_silence_hour"),
                 ("history/", alert_pages.history_view, "alerts_alert_history")]
        return [admin_url(self, "<int:alert_id>/silence/", self.silence_view, "alerts_alert_silence"),
                *[admin_url(self, f"<int:alert_id>/{route}", functools.partial(view, self), name)
                  for route, view, name in pages],
                *super().get_urls()]

    def silence_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("alerts.add_silence"):
            self.message_user(request, "You may not create silences.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:alerts_alert_change", args=[alert_id]))
        alert = get_object_or_404(Alert, pk=alert_id)
        silence = silence_from_alert(alert=alert, created_by=request.user.get_username(),
                                     actor=Actor.from_user(request.user))
        self.message_user(
            request,
            f"Silenced until {timezone.localtime(silence.ends_at):%Y-%m-%d %H:%M}; "
            "change the end or expire it here.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:alerts_silence_change", args=[silence.pk]))

    @admin.action(description="Silence the selected alerts for 2 hours", permissions=["silence"])
    def silence_selected(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = Actor.from_user(request.user)
        made = [silence_from_alert(alert=alert, created_by=actor.name, actor=actor) for alert in queryset]
        self.message_user(request, f"{len(made)} silence(s) created.", messages.SUCCESS)

    def has_silence_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.add_silence")
