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
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timezone import now as clock_now
from django.views.decorators.debug import sensitive_variables

from core.admin_tools import AuditedModelAdmin, ReadOnlyMixin, ReadOnlyModelAdmin, admin_url
from core.audit import Actor
from workers_mgmt.admin_credentials import (
    EMERGENCY,
    age_text,
    credential_issued_response,
    credential_panel_context,
    enrollment_issued_response,
    revoke_confirmation,
    rotate_confirmation,
    rotation_choice,
)
from workers_mgmt.models import (
    CredentialEvent,
    DeliveryMode,
    Worker,
    WorkerConfig,
    WorkerCredential,
)
from workers_mgmt.services import (
    IssuedCredential,
    RotationInProgress,
    credential_revoke,
    credential_rotate,
    credential_rotate_emergency,
    enrollment_issue,
    worker_config_save,
    worker_create,
    worker_credential_issue,
    worker_update,
    workers_set_enabled,
)

# A worker heartbeats every 30 s by default; four missed beats means someone should look.
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=2)

EDITABLE_WORKER_FIELDS = ("name", "enabled", "channel", "rate_limit_per_min", "notes")
ISSUE_CONFIRM_TEMPLATE = "admin/workers_mgmt/issue_key_confirmation.html"


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
        credential, secret = worker_credential_issue(worker=worker, actor=Actor.from_user(request.user))
        issued.append(IssuedCredential(worker_id=worker.pk, key_id=credential.key_id, secret=secret))
    return credential_issued_response(model_admin, request, issued, title="New keys issued")


class WorkerCredentialInline(ReadOnlyMixin, admin.TabularInline):
    model = WorkerCredential
    fields = ("key_id", "state", "grace_until", "last_used_at", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-created_at",)
    verbose_name_plural = "credentials (secrets are never shown again)"


class WorkerAddForm(forms.ModelForm):
    class Meta:
        model = Worker
        fields = ("id", "name", "channel", "rate_limit_per_min", "notes")
        labels = {"id": "Worker id"}


@admin.register(Worker)
class WorkerAdmin(AuditedModelAdmin):
    """Workers are disabled, never deleted: their jobs, attempts and credential trail name them."""

    # Who it is, whether it works and on what; its rate limit and address live on its page (1440 px).
    list_display = ("id", "name", "enabled", "channel", "heartbeat", "reported_version", "reported_status",
                    "running_jobs")
    list_filter = ("enabled", "channel")
    search_fields = ("id", "name")
    actions = ("enable_workers", "disable_workers", "rotate_secrets", "issue_new_key")
    deletion_note = ("Workers are not deleted here: disable one (the Disable action, or untick Enabled) to "
                     "retire it; its jobs, attempts and credential trail keep naming it.")
    add_form = WorkerAddForm
    readonly_fields = ("id", "last_seen_at", "last_heartbeat_at", "reported_version", "reported_status",
                       "running_jobs", "last_metrics", "last_ip", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("id", *EDITABLE_WORKER_FIELDS),
                "description": "A worker is not deleted: untick Enabled (or use the Disable action) to "
                               "retire it; its jobs, attempts and credential trail keep naming it."}),
        ("Last heartbeat", {"fields": ("last_seen_at", "last_heartbeat_at", "reported_version",
                                       "reported_status", "running_jobs", "last_metrics", "last_ip")}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )
    add_fieldsets = ((None, {
        "fields": ("id", "name", "channel", "rate_limit_per_min", "notes"),
        "description": "Saving creates the worker and its first key. The secret is shown once, "
                       "on the next page, and never again.",
    }),)

    def get_form(self, request: HttpRequest, obj: Worker | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Worker | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Worker | None = None) -> Any:
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Worker | None) -> Any:
        # The credentials are shown by the panel under the form (change_form.html), with their
        # grace left and their buttons; an inline would repeat them.
        return []

    change_form_template = "admin/workers_mgmt/worker/change_form.html"

    def get_urls(self) -> list[Any]:
        return [
            admin_url(self, "<path:object_id>/rotate/", self.rotate_view, "workers_mgmt_worker_rotate"),
            admin_url(self, "<path:object_id>/revoke/<str:key_id>/", self.revoke_view,
                      "workers_mgmt_worker_revoke"),
            admin_url(self, "<path:object_id>/enroll/", self.enroll_view, "workers_mgmt_worker_enroll"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        worker = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if worker is not None:
            context.update(credential_panel_context(worker, can_manage=_issue_permission(request)))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _worker_for_action(self, request: HttpRequest, object_id: str) -> Worker:
        worker = self.get_object(request, unquote(object_id))
        if worker is None:
            raise Http404("No such worker.")
        if not (_issue_permission(request) and self.has_change_permission(request, worker)):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return worker

    def _back(self, worker: Worker) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:workers_mgmt_worker_change", args=[quote(worker.pk)]))

    @sensitive_variables("issued")
    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the confirmation page of a push, manual or emergency rotation (it changes nothing).
        POST (from that page): do it; a manual or emergency rotation shows the new secret once."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        worker = self._worker_for_action(request, object_id)
        choice = rotation_choice(request.POST if request.method == "POST" else request.GET)
        if choice is None:
            self.message_user(request, "Choose push, manual or emergency, and a grace of 0 to 2160 hours.",
                              messages.ERROR)
            return self._back(worker)
        mode, grace_hours = choice
        if request.method == "GET":
            return rotate_confirmation(self, request, worker, mode=mode, grace_hours=grace_hours)
        actor = Actor.from_user(request.user)
        ip = request.META.get("REMOTE_ADDR")
        if mode == EMERGENCY:
            issued = credential_rotate_emergency(worker=worker, actor=actor, ip=ip)
            return credential_issued_response(self, request, [issued],
                                              title=f"Emergency rotation of {worker.pk}")
        try:
            issued = credential_rotate(worker=worker, actor=actor, mode=mode, grace_hours=grace_hours, ip=ip)
        except RotationInProgress as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return self._back(worker)
        if mode == DeliveryMode.MANUAL:
            return credential_issued_response(self, request, [issued], title=f"Pending key for {worker.pk}")
        self.message_user(request, f"Key {issued.key_id} is pending: the worker gets it in its next "
                                   "heartbeat and switches to it.", messages.SUCCESS)
        return self._back(worker)

    def revoke_view(self, request: HttpRequest, object_id: str, key_id: str) -> HttpResponse:
        """GET: the confirmation page (it changes nothing). POST (from that page): revoke the key at once."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        worker = self._worker_for_action(request, object_id)
        credential = get_object_or_404(WorkerCredential.objects.select_related("worker"), key_id=key_id,
                                       worker=worker)
        if request.method == "GET":
            return revoke_confirmation(self, request, credential)
        if credential_revoke(credential=credential, actor=Actor.from_user(request.user),
                             ip=request.META.get("REMOTE_ADDR")):
            self.message_user(request, f"Key {key_id} is revoked.", messages.SUCCESS)
        else:
            self.message_user(request, f"Key {key_id} was already revoked.", messages.WARNING)
        return self._back(worker)

    @sensitive_variables("issued")
    def enroll_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: a one-time enrollment token for this worker, shown once."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        worker = self._worker_for_action(request, object_id)
        issued = enrollment_issue(worker=worker, actor=Actor.from_user(request.user),
                                  ip=request.META.get("REMOTE_ADDR"))
        return enrollment_issued_response(self, request, issued)

    @admin.display(description="last seen", ordering="last_seen_at")
    def heartbeat(self, obj: Worker) -> str:
        # Liveness: any signed request counts, not only heartbeats (docs/API.md, "Liveness").
        if obj.last_seen_at is None:
            return _badge("never", "#757575")
        age = clock_now() - obj.last_seen_at
        colour = "#2e7d32" if age <= HEARTBEAT_STALE_AFTER else "#c62828"
        return _badge(age_text(age), colour, title=obj.last_seen_at.isoformat())

    @sensitive_variables("issued")
    def save_model(self, request: HttpRequest, obj: Worker, form: Any, change: bool) -> None:
        if change:
            # Name, channel, rate limit, notes and the enabled flag are plain operator settings.
            # Only those are written: the heartbeat columns shown beside them belong to the worker,
            # which may have reported since this form was loaded.
            values = {name: getattr(obj, name) for name in form.changed_data
                      if name in EDITABLE_WORKER_FIELDS}
            if values:
                worker_update(worker=obj, values=values, actor=Actor.from_user(request.user))
            return
        worker, issued = worker_create(
            worker_id=obj.id, name=obj.name, channel=obj.channel,
            rate_limit_per_min=obj.rate_limit_per_min, notes=obj.notes, actor=Actor.from_user(request.user),
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
        word = "enabled" if enabled else "disabled"
        changed = workers_set_enabled(worker_ids=queryset.values_list("pk", flat=True), enabled=enabled,
                                      actor=Actor.from_user(request.user))
        self.message_user(request, f"{changed} worker(s) {word}.", messages.SUCCESS)

    @admin.action(permissions=["issue"], description="Issue a new key (revokes all old keys)")
    def issue_new_key(self, request: HttpRequest, queryset: QuerySet[Worker]) -> HttpResponse | None:
        return _issue_keys_view(self, request, list(queryset.order_by("pk")))

    @admin.action(permissions=["issue"], description="Rotate secrets (push in the next heartbeat)")
    def rotate_secrets(self, request: HttpRequest, queryset: QuerySet[Worker]) -> None:
        started, refused = [], []
        for worker in queryset.order_by("pk"):
            try:
                credential_rotate(worker=worker, actor=Actor.from_user(request.user),
                                  ip=request.META.get("REMOTE_ADDR"))
            except RotationInProgress:
                refused.append(worker.pk)
                continue
            started.append(worker.pk)
        if started:
            self.message_user(request, f"{len(started)} rotation(s) started; each worker switches at its "
                                       "next heartbeat.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Already rotating (a pending key exists): " + ", ".join(refused),
                              messages.WARNING)

    def has_issue_permission(self, request: HttpRequest) -> bool:
        return _issue_permission(request)


@admin.register(WorkerCredential)
class WorkerCredentialAdmin(ReadOnlyModelAdmin):
    list_display = ("key_id", "worker", "state", "grace_until", "last_used_at", "created_at")
    list_filter = ("state",)
    search_fields = ("=key_id", "=worker__id")
    list_select_related = ("worker",)
    fields = ("key_id", "worker", "state", "grace_until", "last_used_at", "created_at", "updated_at")
    readonly_fields = fields
    actions = ("issue_new_key",)

    def has_issue_permission(self, request: HttpRequest) -> bool:
        return _issue_permission(request)

    @admin.action(permissions=["issue"], description="Issue a new key (revokes all old keys)")
    def issue_new_key(self, request: HttpRequest, queryset: QuerySet[WorkerCredential]
                      ) -> HttpResponse | None:
        workers = list(Worker.objects.filter(pk__in=queryset.values("worker_id")).order_by("pk"))
        return _issue_keys_view(self, request, workers)


@admin.register(WorkerConfig)
class WorkerConfigAdmin(AuditedModelAdmin):
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
        changed = {name: [form.initial.get(name), getattr(obj, name)] for name in form.changed_data}
        saved = worker_config_save(config=obj, actor=Actor.from_user(request.user), changed=changed)
        obj.version = saved.version
        self.message_user(request, f"Workers will load configuration version {saved.version}.",
                          messages.INFO)


@admin.register(CredentialEvent)
class CredentialEventAdmin(ReadOnlyModelAdmin):
    """The credential audit trail: read-only (on PostgreSQL a trigger refuses changes as well)."""

    list_display = ("created_at", "worker_id", "kind", "key_id", "reason", "count", "actor", "ip",
                    "staff_action")
    list_filter = ("kind", "reason", "actor")
    search_fields = ("=worker_id", "=key_id", "=ip")
    list_select_related = ("staff_action",)
    date_hierarchy = "created_at"
    fields = ("created_at", "worker_id", "kind", "key_id", "reason", "count", "minute", "actor", "ip",
              "staff_action")
    readonly_fields = fields
