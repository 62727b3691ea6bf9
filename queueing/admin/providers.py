"""Admin of providers: their policy (through services) and their breakers."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from core.admin_tools import AuditedModelAdmin, action_confirmed
from core.audit import Actor
from queueing.admin.breakers import force_confirmation
from queueing.models import (
    Provider,
)
from queueing.services import (
    BreakerAction,
    breaker_force,
    provider_policy_set,
    provider_update,
)


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ("name", "enabled", "max_attempts", "backoff_base_s", "backoff_cap_s", "lease_seconds",
                  "quota_per_min", "quota_burst", "daily_cap", "breaker_failure_pct",
                  "breaker_min_outcomes", "breaker_window_s", "breaker_cooldown_s", "breaker_probes")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        base, cap = cleaned.get("backoff_base_s"), cleaned.get("backoff_cap_s")  # type: ignore[union-attr]
        if base and cap and cap < base:
            self.add_error("backoff_cap_s", "The backoff cap must not be below the backoff base.")
        return cleaned  # type: ignore[return-value]


@admin.register(Provider)
class ProviderAdmin(AuditedModelAdmin):
    form = ProviderForm
    # The policy an operator changes most, editable in the list; backoff, burst and the breaker's
    # settings live on the provider's page (a list that fits 1440 px beside its filter).
    list_display = ("name", "enabled", "max_attempts", "lease_seconds", "quota_per_min", "daily_cap",
                    "updated_at")
    list_editable = ("enabled", "max_attempts", "lease_seconds")
    list_filter = ("enabled",)
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Provider | None = None) -> Any:
        # Leads and usage counters keep the provider's name as text: a rename would split its history.
        return (*self.readonly_fields, "name") if obj else self.readonly_fields

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("form", ProviderForm)
        return super().get_changelist_form(request, **kwargs)

    actions = ("breaker_force_open", "breaker_force_close", "breaker_reset")

    def _breakers(self, request: HttpRequest, queryset: QuerySet[Provider], action: BreakerAction) -> None:
        user = request.user
        for provider in queryset:
            breaker_force(scope="provider", key=provider.name, action=action, actor=user,
                          reason=f"{action.label.lower()} by {user.get_username()}")
        self.message_user(request, f"Breaker of {queryset.count()} provider(s) changed.", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Force the breaker open (no jobs handed out)")
    def breaker_force_open(self, request: HttpRequest, queryset: QuerySet[Provider]) -> HttpResponse | None:
        if not action_confirmed(request):
            return force_confirmation(self, request, queryset, BreakerAction.FORCE_OPEN,
                                      describe=_provider_name)
        self._breakers(request, queryset, BreakerAction.FORCE_OPEN)
        return None

    @admin.action(permissions=["change"], description="Force the breaker closed (failures ignored)")
    def breaker_force_close(self, request: HttpRequest, queryset: QuerySet[Provider]) -> HttpResponse | None:
        if not action_confirmed(request):
            return force_confirmation(self, request, queryset, BreakerAction.FORCE_CLOSED,
                                      describe=_provider_name)
        self._breakers(request, queryset, BreakerAction.FORCE_CLOSED)
        return None

    @admin.action(permissions=["change"], description="Reset the breaker (closed, counting afresh)")
    def breaker_reset(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        self._breakers(request, queryset, BreakerAction.RESET)

    def save_model(self, request: HttpRequest, obj: Provider, form: Any, change: bool) -> None:
        # The form page and the changelist's editable columns both land here: through the service,
        # so every change has its audit row.
        actor = Actor.from_user(request.user)
        if not change:
            provider, _ = provider_policy_set(name=obj.name, actor=actor)
            values = {name: getattr(obj, name) for name in form.changed_data if name != "name"}
            if values:
                provider_update(provider=provider, values=values, actor=actor)
            obj.pk = provider.pk
            obj._state.adding = False
            obj._state.db = provider._state.db
            return
        values = {name: getattr(obj, name) for name in form.changed_data if name in form.base_fields}
        if values:
            provider_update(provider=obj, values=values, actor=actor)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Bulk delete would gather every protected job of every provider for its confirmation page.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        if obj is not None and (obj.jobs.exists() or obj.campaigns.exists()):
            return False
        return super().has_delete_permission(request, obj)


def _provider_name(provider: Provider) -> str:
    return provider.name
