"""Admin of the job queue: providers, campaigns (with progress), jobs and their attempts.

Jobs and attempts change only through `queueing.services`: their pages are read-only and the admin
offers the services as actions. The job and attempt tables grow past a million rows, so their
changelists never count the whole table, and filters read the small related tables only.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
import uuid
from collections.abc import Iterator
from itertools import islice
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from leadops.admin_tools import ReadOnlyMixin, ReadOnlyModelAdmin
from leadops.errors import Conflict
from queueing.models import (
    AttemptState,
    Breaker,
    BreakerTransition,
    Campaign,
    DeadJob,
    Job,
    JobAttempt,
    JobState,
    Provider,
)
from queueing.selectors import campaign_progress
from queueing.services import (
    BreakerAction,
    breaker_force,
    breaker_reset,
    campaign_enqueue,
    dead_jobs_delete,
    dead_jobs_requeue,
    jobs_cancel,
    jobs_requeue,
)

# Actions over "all N jobs" hand the services their ids in slices, so no statement carries more
# parameters than a database accepts (PostgreSQL stops at 65,535).
ACTION_CHUNK = 1000

JOB_STATE_COLOURS = {
    JobState.QUEUED: "#1565c0",
    JobState.LEASED: "#ef6c00",
    JobState.SUCCEEDED: "#2e7d32",
    JobState.DEAD: "#c62828",
    JobState.CANCELLED: "#757575",
}
ATTEMPT_STATE_COLOURS = {
    AttemptState.RUNNING: "#ef6c00",
    AttemptState.SUCCEEDED: "#2e7d32",
    AttemptState.FAILED: "#c62828",
    AttemptState.LOST: "#ad1457",
    AttemptState.RELEASED: "#757575",
    AttemptState.CANCELLED: "#757575",
}
PROGRESS_COLOURS = (("succeeded", "#2e7d32"), ("dead", "#c62828"), ("cancelled", "#9e9e9e"))


def state_badge(label: str, colour: str) -> SafeString:
    return format_html(
        '<span style="display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;'
        'background:{};font-weight:600;white-space:nowrap">{}</span>',
        colour, label,
    )


def progress_bar(progress: dict[str, int] | None) -> SafeString:
    """A stacked bar of succeeded / dead / cancelled over all jobs, with the numbers under it."""
    total = (progress or {}).get("total", 0)
    if not total:
        return format_html('<span style="color:var(--body-quiet-color)">{}</span>', "no jobs")
    segments = format_html_join(
        "", '<span style="width:{}%;background:{}" title="{} {}"></span>',
        ((f"{100 * progress[key] / total:.2f}", colour, progress[key], key)
         for key, colour in PROGRESS_COLOURS if progress[key]),
    )
    return format_html(
        '<div style="display:flex;width:220px;height:12px;border-radius:3px;overflow:hidden;'
        'background:#e0e0e0" role="img" aria-label="{} of {} jobs finished">{}</div>'
        '<div style="font-size:11px;white-space:nowrap">'
        '<span style="color:#2e7d32">{} succeeded</span> · <span style="color:#c62828">{} dead</span>'
        '{} · {} remaining of {}</div>',
        total - progress["remaining"], total, segments, progress["succeeded"], progress["dead"],
        format_html(" · {} cancelled", progress["cancelled"]) if progress["cancelled"] else "",
        progress["remaining"], total,
    )


def _id_chunks(queryset: QuerySet) -> Iterator[list[int]]:
    # The ids are read in full before the first write, so the services' updates cannot shift a
    # cursor still walking the same rows.
    ids = iter(list(queryset.order_by().values_list("pk", flat=True)))
    while chunk := list(islice(ids, ACTION_CHUNK)):
        yield chunk


def _int_term(search_term: str) -> int | None:
    term = search_term.strip().lstrip("#")
    return int(term) if term.isdecimal() and len(term) < 19 else None


# --- providers -----------------------------------------------------------------------------------


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = ("name", "enabled", "max_attempts", "backoff_base_s", "backoff_cap_s", "lease_seconds",
                  "quota_per_min", "quota_burst", "daily_cap", "breaker_failure_pct",
                  "breaker_min_outcomes", "breaker_window_s", "breaker_cooldown_s", "breaker_probes")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        base, cap = cleaned.get("backoff_base_s"), cleaned.get("backoff_cap_s")
        if base and cap and cap < base:
            self.add_error("backoff_cap_s", "The backoff cap must not be below the backoff base.")
        return cleaned


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "enabled", "max_attempts", "backoff_base_s", "backoff_cap_s", "lease_seconds",
                    "quota_per_min", "quota_burst", "daily_cap", "updated_at")
    list_editable = ("enabled", "max_attempts", "backoff_base_s", "backoff_cap_s", "lease_seconds")
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
    def breaker_force_open(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        self._breakers(request, queryset, BreakerAction.FORCE_OPEN)

    @admin.action(permissions=["change"], description="Force the breaker closed (failures ignored)")
    def breaker_force_close(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        self._breakers(request, queryset, BreakerAction.FORCE_CLOSED)

    @admin.action(permissions=["change"], description="Reset the breaker (closed, counting afresh)")
    def breaker_reset(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        self._breakers(request, queryset, BreakerAction.RESET)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Bulk delete would gather every protected job of every provider for its confirmation page.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        if obj is not None and (obj.jobs.exists() or obj.campaigns.exists()):
            return False
        return super().has_delete_permission(request, obj)


# --- campaigns -----------------------------------------------------------------------------------


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ("name", "provider", "queries", "cities", "priority")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for field in ("queries", "cities"):
            text = cleaned.get(field)
            if text is not None and not any(line.strip() for line in text.splitlines()):
                self.add_error(field, "Give at least one non-empty line.")
        return cleaned


class EnqueuedFilter(admin.SimpleListFilter):
    title = "enqueued"
    parameter_name = "enqueued"

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return (("yes", "Yes"), ("no", "No"))

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(enqueued_at__isnull=self.value() == "no")
        return queryset


class CampaignChangeList(ChangeList):
    """Fetch the progress of the whole page in one query, not one per row."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        campaigns = list(self.result_list)  # fills the queryset's cache; the template reuses it
        progress = campaign_progress(campaign_ids=[campaign.pk for campaign in campaigns])
        for campaign in campaigns:
            campaign.page_progress = progress.get(campaign.pk)


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
        if not change:
            obj.created_by = request.user
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: `enqueued_at` and `jobs_created` belong to campaign_enqueue,
        # which may have run since this form was loaded.
        changed = [name for name in form.changed_data if name in form.base_fields]
        if changed:
            obj.save(update_fields=[*changed, "updated_at"])

    @admin.action(permissions=["change"], description="Enqueue (one job per query and city)")
    def enqueue(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset.select_related("provider"):
            try:
                created = campaign_enqueue(campaign=campaign)
            except Conflict as exc:
                self.message_user(request, f"{campaign}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, campaign, f"Enqueued {created} jobs.")
            self.message_user(request, f"{campaign}: {created} job(s) enqueued.", messages.SUCCESS)


# --- jobs and attempts ---------------------------------------------------------------------------


class JobAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = JobAttempt
    fields = ("number", "worker", "state", "claimed_at", "lease_expires_at", "finished_at", "reports",
              "leads_added", "leads_duplicates", "leads_invalid", "error")
    readonly_fields = fields
    ordering = ("claimed_at",)
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobAttempt]:
        return super().get_queryset(request).select_related("worker")


class JobChangeList(ChangeList):
    """A job list whose date drill-down costs two indexed reads instead of a scan of the table.

    Django's date hierarchy asks the database for the distinct years, months or days that hold rows,
    which on a million jobs reads them all (about a second on PostgreSQL). Here the links are the
    calendar between the first and the last matching job, found by id (ids follow `created_at`),
    so a day without jobs may be offered and simply lists nothing.
    """

    @cached_property
    def calendar_hierarchy(self) -> dict[str, Any]:
        field = self.date_hierarchy
        try:
            year, month, day = (int(self.params.get(f"{field}__{part}") or 0)
                                for part in ("year", "month", "day"))
            if year and month and day:
                chosen = dt.date(year, month, day)
        except ValueError:
            return {"show": False}

        def link(**parts: int) -> str:
            return self.get_query_string({f"{field}__{part}": value for part, value in parts.items()},
                                         [f"{field}__"])

        if year and month and day:
            return {"show": True,
                    "back": {"link": link(year=year, month=month),
                             "title": formats.date_format(chosen, "YEAR_MONTH_FORMAT").capitalize()},
                    "choices": [{"title": formats.date_format(chosen, "MONTH_DAY_FORMAT")}]}
        # The first and last matching jobs bound the calendar offered.
        ordered = self.queryset.order_by("pk").values_list(field, flat=True)
        first, last = ordered.first(), ordered.last()
        if first is None or last is None:
            return {"show": True, "back": None, "choices": []}
        first, last = sorted((timezone.localtime(first).date(), timezone.localtime(last).date()))
        if not year:
            if first.year != last.year:
                return {"show": True, "back": None,
                        "choices": [{"link": link(year=y), "title": str(y)}
                                    for y in range(first.year, last.year + 1)]}
            year, month = first.year, (first.month if first.month == last.month else 0)
        if month:
            days = range(first.day if (first.year, first.month) == (year, month) else 1,
                         (last.day if (last.year, last.month) == (year, month)
                          else calendar.monthrange(year, month)[1]) + 1)
            return {"show": True, "back": {"link": link(year=year), "title": str(year)},
                    "choices": [{"link": link(year=year, month=month, day=d),
                                 "title": formats.date_format(dt.date(year, month, d), "MONTH_DAY_FORMAT")}
                                for d in days]}
        months = range(first.month if first.year == year else 1,
                       (last.month if last.year == year else 12) + 1)
        return {"show": True, "back": {"link": link(), "title": "All dates"},
                "choices": [{"link": link(year=year, month=m),
                             "title": formats.date_format(dt.date(year, m, 1), "YEAR_MONTH_FORMAT")}
                            for m in months]}


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "provider", "state_badge", "priority", "attempts_display", "run_at", "leased_by",
                    "lease_expires_at", "leads_added", "dead_reason", "updated_at")
    list_filter = ("state", "provider", "leased_by", "campaign")
    list_select_related = ("provider", "leased_by")
    search_fields = ("payload", "last_error")
    search_help_text = "A number finds the job with that id; other text searches payload and last error."
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 100
    actions = ("cancel", "requeue")
    inlines = (JobAttemptInline,)
    fieldsets = (
        (None, {"fields": ("id", "provider", "campaign", "state", "priority", "payload")}),
        ("Attempts", {"fields": ("attempts", "max_attempts", "run_at", "current_attempt_id", "leased_by",
                                 "lease_expires_at")}),
        ("Outcome", {"fields": ("leads_added", "last_error", "dead_reason", "finished_at")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("id", "created_at", "updated_at")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
                           ) -> tuple[QuerySet[Job], bool]:
        # A number is a job id: answer from the primary key instead of scanning every payload.
        job_id = _int_term(search_term)
        if job_id is not None:
            return queryset.filter(pk=job_id), False
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Jobs come from campaigns, `enqueue_jobs` and POST /api/v1/jobs.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # The actions need "change" on the list; a job's own page stays read-only because jobs
        # change only through the services.
        if obj is not None:
            return False
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Dead jobs leave through `manage.py dlq purge`; the rest are history of their leads.
        return False

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: Job) -> SafeString:
        return state_badge(obj.get_state_display(), JOB_STATE_COLOURS.get(obj.state, "#757575"))

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.action(permissions=["change"], description="Cancel selected jobs (queued or leased)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        selected = cancelled = 0
        for ids in _id_chunks(queryset):
            selected += len(ids)
            cancelled += jobs_cancel(job_ids=ids)
        self._report(request, done=cancelled, selected=selected, verb="cancelled",
                     skipped="already finished")

    @admin.action(permissions=["change"], description="Requeue selected jobs (finished ones), attempts reset")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        selected = requeued = 0
        for ids in _id_chunks(queryset):
            selected += len(ids)
            requeued += jobs_requeue(job_ids=ids, reset_attempts=True)
        self._report(request, done=requeued, selected=selected, verb="requeued", skipped="not finished")

    def _report(self, request: HttpRequest, *, done: int, selected: int, verb: str, skipped: str) -> None:
        message = f"{done} job(s) {verb}."
        if selected > done:
            message += f" {selected - done} left as they were ({skipped})."
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)


@admin.register(JobAttempt)
class JobAttemptAdmin(ReadOnlyModelAdmin):
    """The log of leases: read-only, like every log."""

    list_display = ("id", "job_link", "number", "worker_link", "state_badge", "claimed_at",
                    "lease_expires_at", "finished_at", "reports", "leads_added", "leads_duplicates",
                    "leads_invalid")
    list_filter = ("state", "worker")
    search_fields = ("=id",)
    search_help_text = "A number finds the attempts of that job id; an attempt id finds that attempt."
    show_full_result_count = False
    list_per_page = 100

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[JobAttempt], search_term: str
                           ) -> tuple[QuerySet[JobAttempt], bool]:
        if not search_term.strip():
            return queryset, False
        job_id = _int_term(search_term)
        if job_id is not None:
            return queryset.filter(job_id=job_id), False
        try:
            return queryset.filter(pk=uuid.UUID(search_term.strip())), False
        except ValueError:
            return queryset.none(), False

    @admin.display(description="job", ordering="job_id")
    def job_link(self, obj: JobAttempt) -> SafeString:
        return format_html('<a href="{}">{}</a>', reverse("admin:queueing_job_change", args=[obj.job_id]),
                           obj.job_id)

    @admin.display(description="worker", ordering="worker_id")
    def worker_link(self, obj: JobAttempt) -> SafeString | str:
        if obj.worker_id is None:
            return "-"
        url = reverse("admin:workers_mgmt_worker_change", args=[quote(obj.worker_id)])
        return format_html('<a href="{}">{}</a>', url, obj.worker_id)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: JobAttempt) -> SafeString:
        return state_badge(obj.get_state_display(), ATTEMPT_STATE_COLOURS.get(obj.state, "#757575"))


# --- dead-letter queue ---------------------------------------------------------------------------


class RequeueForm(forms.Form):
    priority = forms.IntegerField(required=False, min_value=-32768, max_value=32767,
                                  help_text="Leave empty to keep each job's priority.")


class _Echo:
    def write(self, value: str) -> str:
        return value


@admin.register(DeadJob)
class DeadJobAdmin(admin.ModelAdmin):
    """The DLQ: dead jobs with their reason, last error and attempt history."""

    list_display = ("id", "provider", "dead_reason", "attempts_display", "error_code", "finished_at",
                    "priority")
    list_filter = ("provider", "dead_reason", "campaign")
    list_select_related = ("provider",)
    search_fields = ("payload", "last_error")
    show_full_result_count = False
    list_per_page = 100
    actions = ("requeue", "requeue_matching", "export_csv", "delete_selected")
    inlines = (JobAttemptInline,)
    fields = ("id", "provider", "campaign", "dead_reason", "last_error", "attempts", "max_attempts",
              "priority", "payload", "finished_at", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadJob]:
        return super().get_queryset(request).filter(state=JobState.DEAD)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # "change" lets staff run the requeue actions; a dead job's own page stays read-only.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="last error")
    def error_code(self, obj: Job) -> str:
        return obj.last_error.get("code", "") if isinstance(obj.last_error, dict) else ""

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> None:
        for ids in _id_chunks(queryset):
            dead_jobs_delete(job_ids=ids)

    def delete_model(self, request: HttpRequest, obj: DeadJob) -> None:
        dead_jobs_delete(job_ids=[obj.pk])

    @admin.action(permissions=["change"], description="Requeue selected dead jobs (attempts reset)...")
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> HttpResponse | None:
        # An intermediate page asks for an optional new priority; "apply" does the requeue.
        if "apply" in request.POST:
            form = RequeueForm(request.POST)
            if form.is_valid():
                priority = form.cleaned_data["priority"]
                done = sum(dead_jobs_requeue(job_ids=ids, priority=priority) for ids in _id_chunks(queryset))
                self.message_user(request, f"{done} dead job(s) requeued.", messages.SUCCESS)
                return None
        else:
            form = RequeueForm()
        context = {
            **self.admin_site.each_context(request), "title": "Requeue dead jobs", "form": form,
            "opts": self.model._meta, "queryset_count": queryset.count(),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/queueing/deadjob/requeue.html", context)

    @admin.action(permissions=["change"],
                  description="Requeue every dead job matching the current filter (attempts reset)")
    def requeue_matching(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> None:
        changelist = self.get_changelist_instance(request)
        matching = changelist.get_queryset(request)
        done = sum(dead_jobs_requeue(job_ids=ids) for ids in _id_chunks(matching))
        self.message_user(request, f"{done} dead job(s) requeued.", messages.SUCCESS)

    @admin.action(permissions=["view"], description="Export selected dead jobs as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> StreamingHttpResponse:
        writer = csv.writer(_Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(["id", "provider", "dead_reason", "attempts", "max_attempts",
                                   "error_code", "finished_at", "priority"])
            for job in queryset.select_related("provider").order_by("pk").iterator(chunk_size=1000):
                yield writer.writerow([job.pk, job.provider.name, job.dead_reason, job.attempts,
                                       job.max_attempts, _spreadsheet_safe(self.error_code(job)),
                                       job.finished_at.isoformat() if job.finished_at else "",
                                       job.priority])

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="dead-jobs.csv"'
        return response


# --- circuit breakers ----------------------------------------------------------------------------


@admin.register(Breaker)
class BreakerAdmin(admin.ModelAdmin):
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


def _spreadsheet_safe(text: str) -> str:
    """Keep a worker-supplied cell from running as a spreadsheet formula when the CSV is opened."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
