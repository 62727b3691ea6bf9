"""Admin of circuit breakers and their append-only transition log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import model_ngettext
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from core.admin_tools import AuditedModelAdmin, ReadOnlyModelAdmin, action_confirmation_page, action_confirmed
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
    def force_open(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> HttpResponse | None:
        if not action_confirmed(request):
            return force_confirmation(self, request, queryset, BreakerAction.FORCE_OPEN,
                                      describe=lambda b: f"{b.scope} {b.key} ({b.state})")
        self._apply(request, queryset, "forced open", lambda b: breaker_force(
            scope=b.scope, key=b.key, action=BreakerAction.FORCE_OPEN, actor=request.user,
            reason=f"forced open by {request.user.get_username()}"))
        return None

    @admin.action(permissions=["change"], description="Force closed (failures ignored until reset)")
    def force_close(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> HttpResponse | None:
        if not action_confirmed(request):
            return force_confirmation(self, request, queryset, BreakerAction.FORCE_CLOSED,
                                      describe=lambda b: f"{b.scope} {b.key} ({b.state})")
        self._apply(request, queryset, "forced closed", lambda b: breaker_force(
            scope=b.scope, key=b.key, action=BreakerAction.FORCE_CLOSED, actor=request.user,
            reason=f"forced closed by {request.user.get_username()}"))
        return None

    @admin.action(permissions=["change"], description="Reset (closed, counting outcomes afresh)")
    def reset(self, request: HttpRequest, queryset: QuerySet[Breaker]) -> None:
        self._apply(request, queryset, "reset", lambda b: breaker_reset(
            scope=b.scope, key=b.key, actor=request.user))


# What forcing a breaker does, said on the page that asks first (docs/RUNBOOK.md, "Circuit breakers").
FORCE_CONSEQUENCES = {
    BreakerAction.FORCE_OPEN: [
        "No job of a forced provider is handed out, and a forced worker gets no jobs, until someone "
        "forces it closed or resets it: there is no automatic half-open.",
        "Jobs already leased go on; the queue grows meanwhile.",
    ],
    BreakerAction.FORCE_CLOSED: [
        "Failures are still counted but no longer open it, until someone resets it: a failing provider "
        "or worker keeps getting jobs, which may end in the DLQ.",
    ],
}


def force_confirmation(model_admin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any],
                       action: BreakerAction, *, describe: Any) -> HttpResponse:
    """The page that asks before a breaker is forced; it changes nothing (core.admin_tools)."""
    verb = "open" if action == BreakerAction.FORCE_OPEN else "closed"
    count = queryset.count()
    return action_confirmation_page(
        model_admin, request, queryset.order_by("pk"), title=f"Force breakers {verb}?",
        question=(f"Force {count} {model_ngettext(model_admin.opts, count)} {verb}?"
                  if model_admin.opts.model is Breaker
                  else f"Force the breaker of {count} {model_ngettext(model_admin.opts, count)} {verb}?"),
        consequences=FORCE_CONSEQUENCES[action], confirm_label=f"Yes, force {verb}", describe=describe)


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(ReadOnlyModelAdmin):
    """Append-only audit of breaker changes."""

    list_display = ("at", "scope", "key", "from_state", "to_state", "reason", "actor")
    list_filter = ("scope", "to_state")
    search_fields = ("key",)
