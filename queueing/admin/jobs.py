"""Admin of jobs and attempts: read-only pages, services as actions."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin_tools import AuditedModelAdmin, ReadOnlyMixin, ReadOnlyModelAdmin, admin_url, field_display
from core.audit import Actor
from queueing.admin.changelists import JobChangeList
from queueing.admin.common import id_chunks, int_term
from queueing.admin.evidence import evidence_file_view, evidence_gallery
from queueing.admin.html import ATTEMPT_STATE_COLOURS, JOB_STATE_COLOURS, log_tail_html, state_badge
from queueing.models import (
    Job,
    JobAttempt,
)
from queueing.selectors import evidence_of_attempt
from queueing.services import (
    jobs_cancel,
    jobs_requeue,
)


class JobAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = JobAttempt
    fields = ("number", "worker", "state", "claimed_at", "lease_expires_at", "finished_at", "reports",
              "leads_added", "leads_duplicates", "leads_invalid", "error_display")
    readonly_fields = fields
    error_display = field_display("error", description="error")
    ordering = ("claimed_at",)
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobAttempt]:
        return super().get_queryset(request).select_related("worker")


@admin.register(Job)
class JobAdmin(AuditedModelAdmin):
    # What an operator scans for (docs/RUNBOOK.md, "The admin"): the work, where it stands, who holds
    # it; priority, run_at, the lease's expiry and the error live on the job's page. 1440 px wide.
    list_display = ("id", "query", "city", "provider", "state_badge", "attempts_display", "leased_by",
                    "leads_added", "updated")
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
        (None, {"fields": ("id", "provider", "campaign", "state", "priority", "payload_display")}),
        ("Attempts", {"fields": ("attempts", "max_attempts", "run_at", "current_attempt_id", "leased_by",
                                 "lease_expires_at")}),
        ("Outcome", {"fields": ("leads_added", "last_error_display", "dead_reason", "finished_at")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("id", "created_at", "updated_at", "payload_display", "last_error_display")

    payload_display = field_display("payload", description="payload")
    last_error_display = field_display("last_error", description="last error")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Job], search_term: str
                           ) -> tuple[QuerySet[Job], bool]:
        # A number is a job id: answer from the primary key instead of scanning every payload.
        job_id = int_term(search_term)
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
        return state_badge(obj.get_state_display(), JOB_STATE_COLOURS.get(obj.state, "#757575"))  # type: ignore[call-overload]

    @admin.display(description="query")
    def query(self, obj: Job) -> str:
        return str(obj.payload.get("query", "")) if isinstance(obj.payload, dict) else ""

    @admin.display(description="city")
    def city(self, obj: Job) -> str:
        return str(obj.payload.get("city", "")) if isinstance(obj.payload, dict) else ""

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: Job) -> str:
        # Short: the year and seconds are on the job's page; a list is scanned for the latest.
        return f"{timezone.localtime(obj.updated_at):%b %d, %H:%M}"

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.action(permissions=["change"], description="Cancel selected jobs (queued or leased)")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        selected = cancelled = 0
        for ids in id_chunks(queryset):
            selected += len(ids)
            cancelled += jobs_cancel(job_ids=ids, actor=Actor.from_user(request.user))
        self._report(request, done=cancelled, selected=selected, verb="cancelled",
                     skipped="already finished")

    @admin.action(permissions=["change"], description="Requeue selected jobs (finished ones), attempts reset")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        selected = requeued = 0
        for ids in id_chunks(queryset):
            selected += len(ids)
            requeued += jobs_requeue(job_ids=ids, reset_attempts=True, actor=Actor.from_user(request.user))
        self._report(request, done=requeued, selected=selected, verb="requeued", skipped="not finished")

    def _report(self, request: HttpRequest, *, done: int, selected: int, verb: str, skipped: str) -> None:
        message = f"{done} job(s) {verb}."
        if selected > done:
            message += f" {selected - done} left as they were ({skipped})."
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)


@admin.register(JobAttempt)
class JobAttemptAdmin(ReadOnlyModelAdmin):
    """The log of leases: read-only, like every log, with the attempt's screenshots."""

    list_display = ("id", "job_link", "number", "worker_link", "state_badge", "claimed_at",
                    "lease_expires_at", "finished_at", "reports", "leads_added", "leads_duplicates",
                    "leads_invalid")
    list_filter = ("state", "worker")
    readonly_fields = ("error_display", "screenshots", "worker_log")
    exclude = ("log_tail", "error")
    error_display = field_display("error", description="error")
    search_fields = ("=id",)
    search_help_text = "A number finds the attempts of that job id; an attempt id finds that attempt."
    show_full_result_count = False
    list_per_page = 100

    def get_urls(self) -> list[Any]:
        return [admin_url(self, "evidence/<uuid:evidence_id>/", self.evidence_view,
                          "queueing_attemptevidence_file"),
                *super().get_urls()]

    def evidence_view(self, request: HttpRequest, evidence_id: uuid.UUID) -> HttpResponse:
        return evidence_file_view(request, evidence_id, allowed=self.has_view_permission(request))

    @admin.display(description="screenshots")
    def screenshots(self, obj: JobAttempt) -> SafeString:
        return evidence_gallery(evidence_of_attempt(attempt_id=obj.pk))

    @admin.display(description="worker's log tail")
    def worker_log(self, obj: JobAttempt) -> SafeString:
        return log_tail_html(obj.log_tail)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[JobAttempt], search_term: str
                           ) -> tuple[QuerySet[JobAttempt], bool]:
        if not search_term.strip():
            return queryset, False
        job_id = int_term(search_term)
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
        return state_badge(obj.get_state_display(), ATTEMPT_STATE_COLOURS.get(obj.state, "#757575"))  # type: ignore[call-overload]
