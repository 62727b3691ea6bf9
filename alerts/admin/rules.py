"""Admin of the built-in alert rules: thresholds, `for`, severity and labels, saved through the service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from alerts.models import (
    AlertRule,
    AlertState,
)
from alerts.rules import DEFAULTS
from alerts.services import (
    rule_set,
)
from core.admin_tools import AuditedModelAdmin
from core.audit import Actor


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["enabled", "threshold", "for_seconds", "severity", "labels"]

    def clean_threshold(self) -> float:
        if self.cleaned_data["threshold"] < 0:
            raise forms.ValidationError("Zero or more.")
        return self.cleaned_data["threshold"]

    def clean_labels(self) -> dict[str, str]:
        labels = self.cleaned_data.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise forms.ValidationError('Labels are a JSON object of text to text, e.g. {"team": "fleet"}.')
        if {"alertname", "severity"} & set(labels):
            raise forms.ValidationError("alertname and severity are set by the rule itself.")
        return labels


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    form = AlertRuleForm
    list_display = ["kind", "enabled", "threshold", "meaning", "for_seconds", "severity", "firing",
                    "last_evaluated_at"]
    list_editable = ["enabled", "threshold", "for_seconds", "severity"]
    readonly_fields = ["kind", "meaning", "last_evaluated_at"]
    fields = ["kind", "meaning", "enabled", "threshold", "for_seconds", "severity", "labels",
              "last_evaluated_at"]

    @admin.display(description="threshold means")
    def meaning(self, rule: AlertRule) -> str:
        return DEFAULTS[rule.kind].meaning if rule.kind in DEFAULTS else ""

    @admin.display(description="firing")
    def firing(self, rule: AlertRule) -> int:
        return rule.alerts.filter(state=AlertState.FIRING).count()

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> type[forms.ModelForm]:
        # Editing in the list checks what the change page checks (Django builds a bare form otherwise).
        return super().get_changelist_form(request, form=AlertRuleForm, **kwargs)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the rules are built in

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AlertRule, form: forms.ModelForm, change: bool) -> None:
        rule_set(
            kind=obj.kind,
            threshold=obj.threshold,
            for_seconds=obj.for_seconds,
            enabled=obj.enabled,
            severity=obj.severity,
            labels=obj.labels or {},
            actor=Actor.from_user(request.user),
        )
