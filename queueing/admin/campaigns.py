"""Admin of campaigns: progress, and enqueueing through the service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from core.admin_tools import AuditedModelAdmin
from core.audit import Actor
from core.errors import Conflict
from queueing.admin.changelists import CampaignChangeList, EnqueuedFilter
from queueing.admin.html import progress_bar
from queueing.models import (
    Campaign,
)
from queueing.selectors import campaign_progress, campaign_run_progress, campaign_runs_recent
from queueing.services import (
    campaign_create,
    campaign_enqueue,
    campaign_schedule_pause,
    campaign_schedule_resume,
    campaign_update,
)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ("name", "provider", "queries", "cities", "priority", "schedule")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in ("queries", "cities"):
            text = cleaned.get(field)  # type: ignore[union-attr]
            if text is not None and not any(line.strip() for line in text.splitlines()):
                self.add_error(field, "Give at least one non-empty line.")
        return cleaned  # type: ignore[return-value]


class RecurringFilter(admin.SimpleListFilter):
    title = "recurring"
    parameter_name = "recurring"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (("active", "Scheduled"), ("paused", "Paused"), ("once", "Runs once"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
        if self.value() == "active":
            return queryset.exclude(schedule="").filter(schedule_paused=False)
        if self.value() == "paused":
            return queryset.exclude(schedule="").filter(schedule_paused=True)
        if self.value() == "once":
            return queryset.filter(schedule="")
        return queryset


def _schedule_action(service: Callable[..., int], description: str, done: str
                     ) -> Callable[[Any, HttpRequest, QuerySet[Campaign]], None]:
    """A list action that calls `service` on the selected campaigns and says how many it changed."""

    @admin.action(permissions=["change"], description=description)
    def action(model_admin: Any, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        changed = service(campaign_ids=ids, actor=Actor.from_user(request.user))
        level = messages.SUCCESS if changed else messages.WARNING
        model_admin.message_user(request, f"{changed} {done}", level)

    return action


@admin.register(Campaign)
class CampaignAdmin(AuditedModelAdmin):
    form = CampaignForm
    list_display = ("name", "provider", "priority", "progress", "jobs_created", "enqueued_at",
                    "schedule_display", "created_by", "created_at")
    list_filter = (EnqueuedFilter, RecurringFilter, "provider")
    list_select_related = ("provider", "created_by")
    search_fields = ("name",)
    date_hierarchy = "created_at"
    actions = ("enqueue", "pause_schedule", "resume_schedule")
    readonly_fields = ("progress", "jobs_created", "enqueued_at", "created_by", "created_at", "updated_at",
                       "schedule_state", "runs_table")
    fieldsets = (
        (None, {"fields": ("name", "provider", "priority", "queries", "cities")}),
        ("Schedule", {"fields": ("schedule", "schedule_state")}),
        ("Progress", {"fields": ("progress", "jobs_created", "enqueued_at")}),
        ("Runs", {"fields": ("runs_table",)}),
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
        if obj is None:
            return ((None, {"fields": ("name", "provider", "priority", "queries", "cities", "schedule")}),)
        return self.fieldsets

    @admin.display(description="runs")
    def runs_table(self, obj: Campaign) -> SafeString:
        """Every run, newest first, each with its own progress bar (a read-only table, not an inline:
        the change form then needs no formset data)."""
        runs = campaign_runs_recent(campaign_id=obj.pk)
        if not runs:
            return format_html('<span style="color:var(--body-quiet-color)">{}</span>', "no runs yet")
        progress = campaign_run_progress(campaign_id=obj.pk)
        rows = format_html_join("", (
            '<tr data-run="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>'
        ), (
            (run.number, run.number, run.get_trigger_display(),
             f"{localtime(run.scheduled_for):%Y-%m-%d %H:%M}", run.jobs_created,
             format_html('<span style="color:var(--body-quiet-color)">{}</span>', run.note) if run.skipped
             else progress_bar(progress.get(run.pk)))
            for run in runs
        ))
        return format_html(
            '<table id="campaign-runs"><thead><tr><th>run</th><th>trigger</th><th>due</th><th>jobs</th>'
            '<th>progress</th></tr></thead><tbody>{}</tbody></table>', rows)

    @admin.display(description="schedule", ordering="schedule")
    def schedule_display(self, obj: Campaign) -> str:
        if not obj.schedule:
            return "-"
        return f"{obj.schedule} (paused)" if obj.schedule_paused else obj.schedule

    @admin.display(description="next run")
    def schedule_state(self, obj: Campaign) -> str:
        if not obj.schedule:
            return "No schedule: the campaign runs once, when enqueued."
        if obj.schedule_paused:
            return "Paused (resume it with the action on the campaign list)."
        return f"{localtime(obj.next_run_at):%Y-%m-%d %H:%M %Z}" if obj.next_run_at else "-"

    pause_schedule = _schedule_action(
        campaign_schedule_pause, "Pause the schedule of selected campaigns",
        "schedule(s) paused; runs already enqueued carry on.")
    resume_schedule = _schedule_action(
        campaign_schedule_resume, "Resume the schedule of selected campaigns",
        "schedule(s) resumed from now (missed runs are not made up).")

    def get_actions(self, request: HttpRequest) -> Any:
        # Drafts are deleted one at a time from their page, where the check below holds; the bulk
        # "delete selected" would not ask it for each row.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # An enqueued campaign is the history of its jobs; only a draft may go (audited as admin.delete).
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
            self.message_user(request, f"{campaign}: {created} job(s) enqueued.", messages.SUCCESS)
