"""Admin of the fleet: workers, their credentials (read-only, issued by services) and the worker config.

A plain secret exists only in the response to the request that created it: the page is rendered
straight from the service's return value, never stored (not in the session, not in a message, not in
the admin log), so reloading or coming back later cannot show it again. Only the encrypted copy the
services write is kept. No secret ever arrives in a POST (the server makes them), so there is nothing
for `sensitive_post_parameters` to hide; `sensitive_variables` keeps the new ones out of error reports.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_variables

from leadops.clock import now as clock_now
from workers_mgmt.models import Worker, WorkerConfig, WorkerCredential
from workers_mgmt.services import (
    IssuedCredential,
    worker_config_save,
    worker_create,
    worker_credential_issue,
)

# A worker heartbeats every 30 s by default; four missed beats means someone should look.
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=2)

EDITABLE_WORKER_FIELDS = ("name", "enabled", "channel", "rate_limit_per_min", "notes")
CREDENTIAL_ISSUED_TEMPLATE = "admin/workers_mgmt/credential_issued.html"
ISSUE_CONFIRM_TEMPLATE = "admin/workers_mgmt/issue_key_confirmation.html"


def age_text(delta: dt.timedelta) -> str:
    """A short human age: '12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _badge(text: str, colour: str, title: str = "") -> str:
    return format_html(
        '<span title="{}" style="display:inline-block;padding:1px 8px;border-radius:10px;'
        'color:#fff;background:{};font-weight:600;white-space:nowrap">{}</span>',
        title, colour, text,
    )


def _issue_permission(request: HttpRequest) -> bool:
    # Issuing a key adds a credential; the credential admin itself offers no "add" button because
    # only services may create credentials, so the model permission is asked directly.
    opts = WorkerCredential._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")


@sensitive_variables("issued", "secret")
def _issue_keys_view(model_admin: admin.ModelAdmin, request: HttpRequest,
                     workers: list[Worker]) -> HttpResponse | None:
    """Confirm, then give every worker one new key (revoking the old ones) and show the secrets once."""
    if not workers:
        model_admin.message_user(request, "No workers selected.", messages.WARNING)
        return None
    if request.POST.get("post") != "yes":
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Issue new keys?",
            "opts": model_admin.opts,
            "workers": workers,
            "queryset_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "action": request.POST.get("action", ""),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, ISSUE_CONFIRM_TEMPLATE, context)
    issued = []
    for worker in workers:
        credential, secret = worker_credential_issue(worker=worker)
        issued.append(IssuedCredential(worker_id=worker.pk, key_id=credential.key_id, secret=secret))
        model_admin.log_change(request, worker, f"Issued key {credential.key_id}; revoked all older keys.")
    return credential_issued_response(model_admin, request, issued, title="New keys issued")


@sensitive_variables("issued")
def credential_issued_response(model_admin: admin.ModelAdmin, request: HttpRequest,
                               issued: list[IssuedCredential], *, title: str) -> HttpResponse:
    """The one page that ever shows these secrets; admin_view already marks it never_cache."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "issued": issued,
        "worker_changelist_url": reverse("admin:workers_mgmt_worker_changelist"),
        "worker_add_url": reverse("admin:workers_mgmt_worker_add"),
    }
    response = TemplateResponse(request, CREDENTIAL_ISSUED_TEMPLATE, context)
    # Belt and braces beside never_cache: no proxy or browser history may keep the page.
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["Referrer-Policy"] = "no-referrer"
    return response


class WorkerCredentialInline(admin.TabularInline):
    model = WorkerCredential
    fields = ("key_id", "state", "grace_until", "last_used_at", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    verbose_name_plural = "credentials (secrets are never shown again)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WorkerAddForm(forms.ModelForm):
    class Meta:
        model = Worker
        fields = ("id", "name", "channel", "rate_limit_per_min", "notes")
        labels = {"id": "Worker id"}


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "enabled", "channel", "rate_limit_per_min", "heartbeat",
                    "reported_version", "reported_status", "running_jobs", "last_ip")
    list_filter = ("enabled", "channel")
    search_fields = ("id", "name")
    actions = ("enable_workers", "disable_workers", "issue_new_key")
    add_form = WorkerAddForm
    readonly_fields = ("id", "last_heartbeat_at", "reported_version", "reported_status", "running_jobs",
                       "last_metrics", "last_ip", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", *EDITABLE_WORKER_FIELDS)}),
        ("Last heartbeat", {"fields": ("last_heartbeat_at", "reported_version", "reported_status",
                                       "running_jobs", "last_metrics", "last_ip")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    add_fieldsets = ((None, {
        "fields": ("id", "name", "channel", "rate_limit_per_min", "notes"),
        "description": "Saving creates the worker and its first key. The secret is shown once, "
                       "on the next page, and never again.",
    }),)

    def get_form(self, request: HttpRequest, obj: Worker | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Worker | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Worker | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Worker | None) -> Any:
        return [] if obj is None else [WorkerCredentialInline]

    @admin.display(description="last heartbeat", ordering="last_heartbeat_at")
    def heartbeat(self, obj: Worker) -> str:
        if obj.last_heartbeat_at is None:
            return _badge("never", "#757575")
        age = clock_now() - obj.last_heartbeat_at
        colour = "#2e7d32" if age <= HEARTBEAT_STALE_AFTER else "#c62828"
        return _badge(age_text(age), colour, title=obj.last_heartbeat_at.isoformat())

    @sensitive_variables("issued")
    def save_model(self, request: HttpRequest, obj: Worker, form: Any, change: bool) -> None:
        if change:
            # Name, channel, rate limit, notes and the enabled flag are plain operator settings.
            # Only those are written: the heartbeat columns shown beside them belong to the worker,
            # which may have reported since this form was loaded.
            changed = [name for name in form.changed_data if name in EDITABLE_WORKER_FIELDS]
            if changed:
                obj.save(update_fields=[*changed, "updated_at"])
            return
        worker, issued = worker_create(
            worker_id=obj.id, name=obj.name, channel=obj.channel,
            rate_limit_per_min=obj.rate_limit_per_min, notes=obj.notes,
        )
        # The admin goes on logging and answering with `obj`: make it the saved row.
        for field in Worker._meta.concrete_fields:
            setattr(obj, field.attname, getattr(worker, field.attname))
        obj._state.adding = False
        obj._state.db = worker._state.db
        # Kept on this request's object only (the ModelAdmin is shared by every request).
        obj._issued_credential = issued  # type: ignore[attr-defined]

    @sensitive_variables("issued")
    def response_add(self, request: HttpRequest, obj: Worker, post_url_continue: str | None = None
                     ) -> HttpResponse:
        issued = getattr(obj, "_issued_credential", None)
        if issued is None:
            return super().response_add(request, obj, post_url_continue)
        return credential_issued_response(self, request, [issued], title=f"Worker {obj.pk} created")

    @admin.action(permissions=["change"], description="Enable selected workers")
    def enable_workers(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(permissions=["change"], description="Disable selected workers")
    def disable_workers(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Worker], *, enabled: bool) -> None:
        # TODO: move into workers_mgmt.services (workers_set_enabled) with its audit row. Until then
        # this is a compare-and-swap: only rows still in the other state change, and only those
        # are logged and counted.
        word = "enabled" if enabled else "disabled"
        ids = list(queryset.filter(enabled=not enabled).values_list("pk", flat=True))
        changed = Worker.objects.filter(pk__in=ids, enabled=not enabled).update(
            enabled=enabled, updated_at=clock_now()
        )
        if ids:
            LogEntry.objects.log_actions(
                user_id=request.user.pk, queryset=Worker.objects.filter(pk__in=ids), action_flag=CHANGE,
                change_message=f"Worker {word}.",
            )
        self.message_user(request, f"{changed} worker(s) {word}.", messages.SUCCESS)

    @admin.action(permissions=["issue"], description="Issue a new key (revokes all old keys)")
    def issue_new_key(self, request: HttpRequest, queryset: QuerySet[Worker]) -> HttpResponse | None:
        return _issue_keys_view(self, request, list(queryset.order_by("pk")))

    def has_issue_permission(self, request: HttpRequest) -> bool:
        return _issue_permission(request)


@admin.register(WorkerCredential)
class WorkerCredentialAdmin(admin.ModelAdmin):
    list_display = ("key_id", "worker", "state", "grace_until", "last_used_at", "created_at")
    list_filter = ("state",)
    search_fields = ("=key_id", "=worker__id")
    list_select_related = ("worker",)
    fields = ("key_id", "worker", "state", "grace_until", "last_used_at", "created_at", "updated_at")
    readonly_fields = fields
    actions = ("issue_new_key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_issue_permission(self, request: HttpRequest) -> bool:
        return _issue_permission(request)

    @admin.action(permissions=["issue"], description="Issue a new key (revokes all old keys)")
    def issue_new_key(self, request: HttpRequest, queryset: QuerySet[WorkerCredential]
                      ) -> HttpResponse | None:
        workers = list(Worker.objects.filter(pk__in=queryset.values("worker_id")).order_by("pk"))
        return _issue_keys_view(self, request, workers)


@admin.register(WorkerConfig)
class WorkerConfigAdmin(admin.ModelAdmin):
    """One row (pk=1); every save bumps its version so workers reload it."""

    fields = ("poll_interval_s", "long_poll_wait_s", "heartbeat_interval_s", "max_batch",
              "report_chunk_leads", "max_leads_per_report", "max_body_bytes", "update_check_interval_s",
              "extra", "version", "updated_at")
    readonly_fields = ("version", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not WorkerConfig.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        # A list of one row is noise: go straight to the form.
        config = WorkerConfig.objects.order_by("pk").first()
        if config is not None:
            return HttpResponseRedirect(reverse("admin:workers_mgmt_workerconfig_change", args=[config.pk]))
        if self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:workers_mgmt_workerconfig_add"))
        return super().changelist_view(request, extra_context)

    def save_model(self, request: HttpRequest, obj: WorkerConfig, form: Any, change: bool) -> None:
        if not change:
            obj.pk = 1
        saved = worker_config_save(config=obj)
        obj.version = saved.version
        self.message_user(request, f"Workers will load configuration version {saved.version}.",
                          messages.INFO)
