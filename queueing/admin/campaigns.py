"""Admin of campaigns: progress, and enqueueing through the service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.audit import Actor
from core.errors import Conflict
from queueing.admin.changelists import CampaignChangeList, EnqueuedFilter
from queueing.admin.html import progress_bar
from queueing.models import (
    Campaign,
)
from queueing.selectors import campaign_progress
from queueing.services import (
    campaign_create,
    campaign_enqueue,
    campaign_update,
)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ("name", "provider", "queries", "cities", "priority")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in ("queries", "cities"):
            text = cleaned.get(field)  # type: ignore[union-attr]
            if text is not None and not any(line.strip() for line in text.splitlines()):
                self.add_error(field, "Give at least one non-empty line.")
        return cleaned  # type: ignore[return-value]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "provider", "priority", "progress", "jobs_created", "enqueued_at", "created_by",
                    "created_at")
    list_filter = (EnqueuedFilter, "provider")
    list_select_related = ("provider", "created_by")
    search_fields = ("name",)
    date_hierarchy = "created_at"
    actions = ("enqueue",)
    readonly_fields = ("progress", "jobs_created", "enqueued_at", "created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "provider", "priority", "queries", "cities")}),
        ("Progress", {"fields": ("progress", "jobs_created", "enqueued_at")}),
        ("History", {"fields": ("created_by", "created_at", "updated_at")}),
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return CampaignChangeList

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        if obj is not None and obj.enqueued_at:
            # Its jobs exist already: editing the work would no longer describe them.
            return (*self.readonly_fields, "name", "provider", "priority", "queries", "cities")
        return self.readonly_fields

    def get_fieldsets(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        return self.fieldsets[:1] if obj is None else self.fieldsets

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # An enqueued campaign is the history of its jobs; only a draft may go.
        if obj is not None and obj.enqueued_at:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="progress")
    def progress(self, obj: Campaign) -> SafeString:
        if hasattr(obj, "page_progress"):
            progress = obj.page_progress  # filled for the whole changelist page at once
        else:
            progress = campaign_progress(campaign_ids=[obj.pk]).get(obj.pk) if obj.pk else None
        if not obj.enqueued_at and not progress:
            return format_html('<span style="color:var(--body-quiet-color)">{}</span>', "not enqueued")
        return progress_bar(progress)

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        actor = Actor.from_user(request.user)
        if not change:
            campaign_create(campaign=obj, actor=actor)
            return
        # Only what the form changed: `enqueued_at` and `jobs_created` belong to campaign_enqueue,
        # which may have run since this form was loaded.
        values = {name: getattr(obj, name) for name in form.changed_data if name in form.base_fields}
        if values:
            campaign_update(campaign=obj, values=values, actor=actor)

    @admin.action(permissions=["change"], description="Enqueue (one job per query and city)")
    def enqueue(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset.select_related("provider"):
            try:
                created = campaign_enqueue(campaign=campaign, actor=Actor.from_user(request.user))
            except Conflict as exc:
                self.message_user(request, f"{campaign}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, campaign, f"Enqueued {created} jobs.")
            self.message_user(request, f"{campaign}: {created} job(s) enqueued.", messages.SUCCESS)
