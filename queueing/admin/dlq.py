"""Admin of the dead-letter queue: requeue, purge, CSV export."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import DateTimeField, ExpressionWrapper, F, QuerySet, Value
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from core.admin_tools import (
    AuditedModelAdmin,
    action_confirmation_page,
    action_confirmed,
    admin_export_record,
    field_display,
)
from core.audit import Actor
from core.csv import csv_response
from queueing.admin.common import id_chunks
from queueing.admin.evidence import HasEvidenceFilter, evidence_gallery
from queueing.admin.html import log_tail_html
from queueing.admin.jobs import JobAttemptInline
from queueing.models import (
    DeadJob,
    Job,
    JobState,
)
from queueing.selectors import dead_job_retention_days, evidence_of_job, log_tails_of_job
from queueing.services import (
    dead_jobs_delete,
    dead_jobs_requeue,
)


class RequeueForm(forms.Form):
    priority = forms.IntegerField(required=False, min_value=-32768, max_value=32767,
                                  help_text="Leave empty to keep each job's priority.")


@admin.register(DeadJob)
class DeadJobAdmin(AuditedModelAdmin):
    """The DLQ: dead jobs with their reason, last error and attempt history."""

    list_display = ("id", "provider", "dead_reason", "attempts_display", "error_code", "finished_at",
                    "purged_on", "priority")
    list_filter = ("provider", "dead_reason", HasEvidenceFilter, "campaign")
    list_select_related = ("provider",)
    search_fields = ("payload", "last_error")
    show_full_result_count = False
    list_per_page = 100
    actions = ("requeue", "requeue_matching", "export_csv", "delete_selected")
    inlines = (JobAttemptInline,)
    fields = ("id", "provider", "campaign", "dead_reason", "last_error_display", "attempts", "max_attempts",
              "priority", "payload_display", "finished_at", "purged_on", "created_at", "screenshots",
              "worker_logs")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadJob]:
        dead = super().get_queryset(request).filter(state=JobState.DEAD)
        # The date the retention purge deletes each job, in the same query
        # (docs/RUNBOOK.md, "Dead-letter queue").
        days = dead_job_retention_days()
        if days is None:
            return dead.annotate(purge_at=Value(None, output_field=DateTimeField()))
        return dead.annotate(purge_at=ExpressionWrapper(F("finished_at") + dt.timedelta(days=days),
                                                        output_field=DateTimeField()))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # "change" lets staff run the requeue actions; a dead job's own page stays read-only.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="attempts", ordering="attempts")
    def attempts_display(self, obj: Job) -> str:
        return f"{obj.attempts}/{obj.max_attempts}"

    @admin.display(description="purged on", ordering="purge_at")
    def purged_on(self, obj: Job) -> str:
        purge_at = getattr(obj, "purge_at", None)
        if purge_at is None:
            return "kept until staff act (no retention)"
        return f"purged on {timezone.localtime(purge_at):%Y-%m-%d %H:%M}"

    @admin.display(description="screenshots")
    def screenshots(self, obj: Job) -> SafeString:
        return evidence_gallery(evidence_of_job(job_id=obj.pk), label_attempt=True)

    @admin.display(description="workers' log tails")
    def worker_logs(self, obj: Job) -> SafeString:
        tails = log_tails_of_job(job_id=obj.pk)
        if not tails:
            return log_tail_html("")
        return format_html_join("", "{}", ((log_tail_html(text, label=f"attempt {number}"),)
                                           for number, text in tails))

    last_error_display = field_display("last_error", description="last error")
    payload_display = field_display("payload", description="payload")

    @admin.display(description="last error")
    def error_code(self, obj: Job) -> str:
        return obj.last_error.get("code", "") if isinstance(obj.last_error, dict) else ""

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> None:
        for ids in id_chunks(queryset):
            dead_jobs_delete(job_ids=ids, actor=Actor.from_user(request.user))

    def delete_model(self, request: HttpRequest, obj: DeadJob) -> None:
        dead_jobs_delete(job_ids=[obj.pk], actor=Actor.from_user(request.user))

    @admin.action(permissions=["change"], description="Requeue selected dead jobs (attempts reset)...")
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> HttpResponse | None:
        # An intermediate page asks for an optional new priority; "apply" does the requeue.
        if "apply" in request.POST:
            form = RequeueForm(request.POST)
            if form.is_valid():
                priority = form.cleaned_data["priority"]
                actor = Actor.from_user(request.user)
                done = sum(dead_jobs_requeue(job_ids=ids, priority=priority, actor=actor)
                           for ids in id_chunks(queryset))
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
    def requeue_matching(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> HttpResponse | None:
        changelist = self.get_changelist_instance(request)
        matching = changelist.get_queryset(request)
        if not action_confirmed(request):
            # Asks first, naming how many jobs the filter holds; the page's POST keeps the filter.
            return action_confirmation_page(
                self, request, matching.select_related("provider").order_by("pk"),
                title="Requeue every matching dead job?",
                question=f"Requeue all {matching.count()} dead job(s) matching the current filter?",
                consequences=["Each goes back to the queue with its attempts reset to 0 and is claimed "
                              "again by the workers.",
                              "It leaves the DLQ: its evidence stays on its attempts."],
                confirm_label="Yes, requeue them all",
                describe=lambda job: f"{job.pk} ({job.provider.name}, {job.dead_reason})")
        actor = Actor.from_user(request.user)
        done = sum(dead_jobs_requeue(job_ids=ids, actor=actor) for ids in id_chunks(matching))
        self.message_user(request, f"{done} dead job(s) requeued.", messages.SUCCESS)
        return None

    @admin.action(permissions=["view"], description="Export selected dead jobs as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[DeadJob]) -> StreamingHttpResponse:
        admin_export_record(request, queryset, action="dlq.export", export_format="csv")
        rows = (
            [job.pk, job.provider.name, job.dead_reason, job.attempts, job.max_attempts, self.error_code(job),
             job.finished_at, job.priority]
            for job in queryset.select_related("provider").order_by("pk").iterator(chunk_size=1000)
        )
        return csv_response(header=["id", "provider", "dead_reason", "attempts", "max_attempts", "error_code",
                                    "finished_at", "priority"], rows=rows, filename="dead-jobs.csv")
