"""The alert pages a notification links to: acknowledge and silence 1 h (a GET confirm page naming what
will happen, a POST with its CSRF token doing it, audited), and the alert's notification history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertState
from alerts.selectors import alert_notification_history
from alerts.services import AlertsError, alert_acknowledge, silence_from_alert
from core.audit import Actor

SILENCE_MINUTES = 60
CONFIRM_TEMPLATE = "admin/alerts/alert/confirm.html"


def _context(model_admin: admin.ModelAdmin[Any], request: HttpRequest, alert: Alert, **extra: Any
             ) -> dict[str, Any]:
    return {**model_admin.admin_site.each_context(request), "opts": model_admin.model._meta, "alert": alert,
            "alertname": alert.labels.get("alertname", ""), "summary": alert.annotations.get("summary", ""),
            "labels": sorted(alert.labels.items()), **extra}


def _back(alert_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:alerts_alert_change", args=[alert_id]))


def acknowledge_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest, alert_id: int) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    alert = get_object_or_404(Alert, pk=alert_id)
    refusal = "" if request.user.has_perm("alerts.change_alert") else "You may not acknowledge alerts."
    if not refusal and alert.state != AlertState.FIRING:
        refusal = f"This alert is {alert.state}: only a firing alert can be acknowledged."
    if request.method == "POST" and not refusal:
        try:
            alert_acknowledge(alert_id=alert.pk, actor=Actor.from_user(request.user))
        except AlertsError as exc:
            model_admin.message_user(request, f"Not acknowledged: {exc}.", messages.ERROR)
        else:
            model_admin.message_user(request, "Acknowledged: no repeat notifications of this alert until "
                                     "it resolves or changes.", messages.SUCCESS)
        return _back(alert.pk)
    what = ("You acknowledge this alert under your name. Its notifications stop repeating until it resolves "
            "or changes (another severity, a value past twice its class, another top reason or top "
            "release); a change or a new streak notifies again.")
    return TemplateResponse(request, CONFIRM_TEMPLATE, _context(
        model_admin, request, alert, title="Acknowledge", what=what, confirm="Yes, acknowledge",
        refusal=refusal))


def silence_hour_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest, alert_id: int
                      ) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    alert = get_object_or_404(Alert, pk=alert_id)
    refusal = "" if request.user.has_perm("alerts.add_silence") else "You may not create silences."
    if not refusal and alert.state == AlertState.RESOLVED:
        refusal = "This alert has resolved: there is nothing to silence."
    if request.method == "POST" and not refusal:
        silence = silence_from_alert(alert=alert, created_by=request.user.get_username(),
                                     minutes=SILENCE_MINUTES, actor=Actor.from_user(request.user))
        model_admin.message_user(request, f"Silenced until {timezone.localtime(silence.ends_at):%H:%M}.",
                                 messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:alerts_silence_change", args=[silence.pk]))
    until = timezone.localtime(timezone.now() + dt.timedelta(minutes=SILENCE_MINUTES))
    what = (f"A silence matching every label of this alert is created under your name until "
            f"{until:%Y-%m-%d %H:%M}: no notification of it until then (expire it early on its page).")
    return TemplateResponse(request, CONFIRM_TEMPLATE, _context(
        model_admin, request, alert, title="Silence 1 h", what=what, confirm="Yes, silence for 1 hour",
        refusal=refusal))


def history_view(model_admin: admin.ModelAdmin[Any], request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = get_object_or_404(Alert, pk=alert_id)
    return TemplateResponse(request, "admin/alerts/alert/history.html", _context(
        model_admin, request, alert, title="Notification history",
        history=alert_notification_history(alert_id=alert.pk)))
