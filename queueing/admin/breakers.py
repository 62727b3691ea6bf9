"""Admin of circuit breakers and their append-only transition log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_tools import AuditedModelAdmin, ReadOnlyModelAdmin
from queueing.models import (
    Breaker,
    BreakerTransition,
)
from queueing.services import (
    BreakerAction,
    breaker_force,
    breaker_reset,
)


@admin.register(Breaker)
class BreakerAdmin(AuditedModelAdmin):
    list_display = ("scope", "key", "state", "forced", "opened_at", "retry_at", "probes_left",
                    "probes_succeeded", "updated_at")
    list_filter = ("scope", "state", "forced")
    search_fields = ("key",)
    actions = ("force_open", "force_close", "reset")
    readonly_fields = ("scope", "key", "state", "forced", "opened_at", "retry_at", "counting_since",
                       "probes_left", "probes_succeeded", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _apply(self, request: HttpRequest, queryset: QuerySet[Breaker], verb: str, move: Any) -> None:
        done = sum(1 for breaker in queryset if move(breaker))
        self.message_user(request, f"{done} breaker(s) {verb}.", messages.SUCCESS)

    @admin.action(permissions=["change"], description="Force open (held open until closed or reset)")
    def force_open(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> None:
        self._apply(request, queryset, "forced open", lambda b: breaker_force(
            scope=b.scope, key=b.key, action=BreakerAction.FORCE_OPEN, actor=request.user,
            reason=f"forced open by {request.user.get_username()}"))

    @admin.action(permissions=["change"], description="Force closed (failures ignored until reset)")
    def force_close(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> None:
        self._apply(request, queryset, "forced closed", lambda b: breaker_force(
            scope=b.scope, key=b.key, action=BreakerAction.FORCE_CLOSED, actor=request.user,
            reason=f"forced closed by {request.user.get_username()}"))

    @admin.action(permissions=["change"], description="Reset (closed, counting outcomes afresh)")
    def reset(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> None:
        self._apply(request, queryset, "reset", lambda b: breaker_reset(
            scope=b.scope, key=b.key, actor=request.user))


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(ReadOnlyModelAdmin):
    """Append-only audit of breaker changes."""

    list_display = ("at", "scope", "key", "from_state", "to_state", "reason", "actor")
    list_filter = ("scope", "to_state")
    search_fields = ("key",)
