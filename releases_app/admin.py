"""Admin of releases: upload, channels with adoption, the rollout page, pins, reports, the audit trail.

Thin: every change goes through releases_app.services (docs/RELEASES.md); pages are read through
releases_app.selectors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.admin_tools import (
    AuditedModelAdmin,
    ReadOnlyMixin,
    ReadOnlyModelAdmin,
    action_confirmation_page,
    action_confirmed,
    admin_url,
    confirmation_page,
)
from core.audit import Actor
from releases_app import selectors, services
from releases_app.models import (
    Channel,
    Release,
    ReleaseAuditEvent,
    ReleaseState,
    Rollout,
    RolloutState,
    WorkerPin,
    WorkerReleaseStatus,
)


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_user(request.user)


def _version(release: Release | None) -> str:
    return release.version if release is not None else "nothing"


# --- releases -----------------------------------------------------------------------------------


class ReleaseUploadForm(forms.Form):
    version = forms.CharField(max_length=63)
    artifact = forms.FileField(help_text="A .tar.gz or .zip with worker-manifest.json at its top level.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    min_agent_version = forms.CharField(max_length=63, required=False, label="Minimum agent version")


@admin.register(Release)
class ReleaseAdmin(AuditedModelAdmin):
    list_display = ("version", "state", "size", "short_sha256", "archive_format", "created_by", "created_at")
    list_filter = ("state", "archive_format")
    search_fields = ("version", "sha256")
    date_hierarchy = "created_at"
    actions = ["revoke"]
    readonly_fields = ("version", "artifact_name", "archive_format", "sha256", "size", "notes",
                       "min_agent_version", "entrypoint", "node_version", "chromium_version", "state",
                       "self_test_report_pretty", "created_by", "created_at", "updated_at")
    exclude = ("self_test_report",)
    change_list_template = "admin/releases_app/release/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the upload page, which self-tests them

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: channels, rollouts and audit rows refer to releases

    def has_upload_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases_app.add_release")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases_app.change_release")

    @admin.display(description="SHA-256")
    def short_sha256(self, obj: Release) -> str:
        return obj.sha256[:16]

    @admin.display(description="Self-test report")
    def self_test_report_pretty(self, obj: Release) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.self_test_report, indent=2, sort_keys=True))

    def get_urls(self) -> list[Any]:
        return [admin_url(self, "upload/", self.upload_view, "releases_app_release_upload"),
                *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_upload_permission(request):
            raise PermissionDenied
        form = ReleaseUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["artifact"]
            try:
                release = services.release_publish(
                    version=form.cleaned_data["version"], fileobj=upload, filename=upload.name,
                    notes=form.cleaned_data["notes"],
                    min_agent_version=form.cleaned_data["min_agent_version"], actor=_actor(request))
            except services.ReleaseRefused as exc:
                form.add_error(None, str(exc))
            else:
                level = messages.SUCCESS if release.state == ReleaseState.READY else messages.ERROR
                errors = "; ".join(release.self_test_report.get("errors", []))
                summary = f"Release {release.version}: {release.state}. {errors}".strip()
                self.message_user(request, summary, level)
                return HttpResponseRedirect(reverse("admin:releases_app_release_change", args=[release.pk]))
        context = {**self.admin_site.each_context(request), "title": "Upload a worker release", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/releases_app/release/upload.html", context)

    @admin.action(permissions=["revoke"], description="Revoke the selected releases")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Release]) -> None:
        for release in queryset:
            try:
                services.release_revoke(release=release, actor=_actor(request))
            except services.ReleaseRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Release {release.version} revoked.", messages.SUCCESS)


# --- channels -----------------------------------------------------------------------------------


@admin.register(Channel)
class ChannelAdmin(AuditedModelAdmin):
    list_display = ("name", "current", "previous", "sequence", "manifest_expires_at", "workers_per_version")
    readonly_fields = ("current", "previous", "sequence", "manifest_expires_at", "manifest_pretty",
                       "workers_per_version")
    fields = ("name", "manifest_ttl_hours", *readonly_fields)
    actions = ["rollback", "sign_again"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("name", *self.readonly_fields) if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_rollback_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases_app.change_channel")

    @admin.display(description="Signed manifest")
    def manifest_pretty(self, obj: Channel) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.manifest, indent=2, sort_keys=True))

    @admin.display(description="Workers per version")
    def workers_per_version(self, obj: Channel) -> str:
        rows = {row["channel"]: row for row in selectors.adoption_by_channel()}.get(obj.name)
        if not rows:
            return "no workers"
        return ", ".join(f"{v['version']}: {v['workers']}" for v in rows["versions"])

    @admin.action(permissions=["rollback"], description="Roll back to the previous release")
    def rollback(self, request: HttpRequest, queryset: QuerySet[Channel]) -> HttpResponse | None:
        if not action_confirmed(request):
            return action_confirmation_page(
                self, request, queryset.select_related("current", "previous"), title="Roll back channels?",
                question="Roll these channels back to their previous release?",
                consequences=ROLLOUT_CONSEQUENCES["rollback"], confirm_label="Yes, roll back",
                describe=lambda channel: f"{channel.name}: {_version(channel.current)} -> "
                                         f"{_version(channel.previous)}")
        for channel in queryset:
            try:
                services.channel_rollback(channel_name=channel.name, actor=_actor(request))
            except services.ReleaseRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Channel {channel.name} rolled back.", messages.SUCCESS)
        return None

    @admin.action(permissions=["rollback"], description="Sign the manifest again (sequence + 1)")
    def sign_again(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            services.channel_manifest_sign(channel_name=channel.name, actor=_actor(request), reason="admin")
        self.message_user(request, f"{queryset.count()} manifest(s) signed again.", messages.SUCCESS)


# --- rollouts -----------------------------------------------------------------------------------


class RolloutStartForm(forms.Form):
    release = forms.ModelChoiceField(queryset=Release.objects.filter(state=ReleaseState.READY))
    channel = forms.CharField(max_length=40, initial="stable")
    canary = forms.CharField(required=False, help_text="Comma-separated worker ids that get it first.")
    steps = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
                            help_text='JSON, e.g. [{"canary": ["w1"], "hold_s": 1800, "approve": true}, '
                                      '{"percent": 50, "hold_s": 1800}, {"percent": 100}]. '
                                      'Empty: the default.')

    def clean_steps(self) -> Any:
        text = self.cleaned_data["steps"].strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None


ROLLOUT_VERBS = {
    "pause": ("Pause", lambda name, actor: services.rollout_pause(channel_name=name, actor=actor)),
    "resume": ("Resume", lambda name, actor: services.rollout_resume(channel_name=name, actor=actor)),
    "promote": ("Promote now", lambda name, actor: services.rollout_promote(channel_name=name, actor=actor)),
    "abort": ("Abort", lambda name, actor: services.rollout_abort(channel_name=name, actor=actor)),
    "rollback": ("Roll back", lambda name, actor: services.channel_rollback(channel_name=name, actor=actor)),
}

# The verbs that take something away from a running fleet: each asks first, on a page that names what
# will happen (a GET from the rollout page, or the list action's first POST), and does it on the POST
# of that page (docs/RUNBOOK.md, "Confirmations").
ROLLOUT_CONSEQUENCES = {
    "pause": ["No worker is added to the rollout and no step advances until it is resumed.",
              "Workers already on the new release stay on it."],
    "abort": ["The rollout stops for good.",
              "Every worker it reached is sent back to the release the channel had before it "
              "(a new signed manifest)."],
    "rollback": ["The channel goes back to its previous release (its manifest signed again, sequence + 1).",
                 "A rollout in progress on the channel is stopped; every worker on it reinstalls the "
                 "previous release."],
}


def rollout_question(verb: str, rollout: Rollout) -> str:
    label = ROLLOUT_VERBS[verb][0]
    return (f"{label}: the rollout of {rollout.release.version} on channel {rollout.channel.name} "
            f"(rollout {rollout.pk}, {rollout.get_state_display()})?")


def _rollout_action(verb: str, description: str
                    ) -> Callable[[Any, HttpRequest, QuerySet[Rollout]], HttpResponse | None]:
    """The list action of one ROLLOUT_VERBS verb, on the selected rollouts."""

    @admin.action(permissions=["operate"], description=description)
    def action(model_admin: Any, request: HttpRequest, queryset: QuerySet[Rollout]) -> HttpResponse | None:
        rollouts = queryset.select_related("channel", "release")
        label = ROLLOUT_VERBS[verb][0]
        if verb in ROLLOUT_CONSEQUENCES and not action_confirmed(request):
            return action_confirmation_page(
                model_admin, request, rollouts, title=f"{label}?", question=f"{label}: these rollouts?",
                consequences=ROLLOUT_CONSEQUENCES[verb], confirm_label=f"Yes, {label.lower()}",
                describe=lambda rollout: f"rollout {rollout.pk}: {rollout.release.version} on "
                                         f"{rollout.channel.name} ({rollout.get_state_display()})")
        model_admin._operate(request, rollouts, verb)
        return None

    action.__name__ = verb
    return action


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyMixin, AuditedModelAdmin):
    # Read-only: the start page calls rollout_start, the operations their services.
    # The rollout's progress at a glance; its targets and who started it live on its page (1440 px).
    list_display = ("id", "release", "channel", "state", "step_display", "created_at")
    list_filter = ("state", "channel")
    date_hierarchy = "created_at"
    list_select_related = ("channel", "release")
    actions = ["pause", "resume", "promote", "abort", "rollback"]
    change_list_template = "admin/releases_app/rollout/change_list.html"

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("releases_app.change_rollout")

    @admin.display(description="Step")
    def step_display(self, obj: Rollout) -> str:
        return f"{obj.step_index + 1} of {len(obj.steps)}"

    @admin.display(description="Workers reached")
    def targets_count(self, obj: Rollout) -> int:
        return obj.targets.count()

    def get_urls(self) -> list[Any]:
        return [
            admin_url(self, "start/", self.start_view, "releases_app_rollout_start"),
            admin_url(self, "<int:rollout_id>/do/<str:verb>/", self.operate_view,
                      "releases_app_rollout_operate"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The rollout page: steps with progress, the last gate result, the reached workers, the buttons."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        rollout = get_object_or_404(Rollout.objects.select_related("channel", "release", "from_release"),
                                    pk=object_id)
        audit = ReleaseAuditEvent.objects.filter(rollout_id_ref=rollout.pk).order_by("-created_at", "-id")
        audit = audit[:50]
        context = {
            **self.admin_site.each_context(request), "title": f"Rollout of {rollout.release.version} on "
                                                              f"{rollout.channel.name}",
            "opts": self.model._meta, "rollout": rollout,
            "progress": selectors.rollout_progress(rollout=rollout),
            "targets": rollout.targets.order_by("step_index", "worker_id"), "audit": audit,
            "gate": rollout.last_gate_result, "active": rollout.is_active,
            "verbs": [(verb, label) for verb, (label, _call) in ROLLOUT_VERBS.items()
                      if not (verb == "resume" and rollout.state != RolloutState.PAUSED)
                      and not (verb == "pause" and rollout.state == RolloutState.PAUSED)],
            "can_operate": self.has_operate_permission(request),
            "confirm_verbs": list(ROLLOUT_CONSEQUENCES),
        }
        return TemplateResponse(request, "admin/releases_app/rollout/detail.html", context)

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        form = RolloutStartForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            canary = [name.strip() for name in data["canary"].split(",") if name.strip()]
            try:
                rollout = services.rollout_start(
                    version=data["release"].version, channel_name=data["channel"], canary=canary,
                    steps=data["steps"], actor=_actor(request))
            except services.ReleaseRefused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Rollout of {rollout.release.version} started.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:releases_app_rollout_change", args=[rollout.pk]))
        context = {**self.admin_site.each_context(request), "title": "Start a rollout", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/releases_app/rollout/start.html", context)

    def operate_view(self, request: HttpRequest, rollout_id: int, verb: str) -> HttpResponse:
        """POST: do `verb`. GET of a verb that asks first: its confirmation page, which changes nothing."""
        if not self.has_operate_permission(request) or verb not in ROLLOUT_VERBS:
            raise PermissionDenied
        asks = verb in ROLLOUT_CONSEQUENCES
        if request.method != "POST" and not (request.method == "GET" and asks):
            return HttpResponseNotAllowed(["GET", "POST"] if asks else ["POST"])
        rollout = get_object_or_404(Rollout.objects.select_related("channel", "release"), pk=rollout_id)
        if request.method == "GET":
            back = reverse("admin:releases_app_rollout_change", args=[rollout.pk])
            label = ROLLOUT_VERBS[verb][0]
            return confirmation_page(self, request, title=f"{label}?",
                                     question=rollout_question(verb, rollout),
                                     consequences=ROLLOUT_CONSEQUENCES[verb],
                                     confirm_label=f"Yes, {label.lower()}", cancel_url=back)
        self._operate(request, [rollout], verb)
        return HttpResponseRedirect(reverse("admin:releases_app_rollout_change", args=[rollout.pk]))

    def _operate(self, request: HttpRequest, rollouts: Any, verb: str) -> None:
        label, call = ROLLOUT_VERBS[verb]
        for rollout in rollouts:
            if not rollout.is_active and verb != "rollback":
                self.message_user(request, f"Rollout {rollout.pk} is {rollout.state}.", messages.WARNING)
                continue
            try:
                call(rollout.channel.name, _actor(request))
            except services.ReleaseRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{label}: rollout {rollout.pk} on {rollout.channel.name}.",
                                  messages.SUCCESS)

    pause = _rollout_action("pause", "Pause the selected rollouts")
    resume = _rollout_action("resume", "Resume the selected rollouts")
    promote = _rollout_action("promote", "Promote now (next step)")
    abort = _rollout_action("abort", "Abort (back to the old release)")
    rollback = _rollout_action("rollback", "Roll back the channel")


# --- pins, reports, audit -------------------------------------------------------------------------


class WorkerPinForm(forms.ModelForm):
    class Meta:
        model = WorkerPin
        fields = ("worker", "release", "reason", "expires_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        release = self.fields["release"]
        assert isinstance(release, forms.ModelChoiceField)
        release.queryset = Release.objects.filter(state=ReleaseState.READY)


@admin.register(WorkerPin)
class WorkerPinAdmin(AuditedModelAdmin):
    form = WorkerPinForm
    list_display = ("worker", "release", "reason", "expires_at", "created_by", "created_at")
    autocomplete_fields = ("worker",)
    search_fields = ("worker__id",)

    def save_model(self, request: HttpRequest, obj: WorkerPin, form: Any, change: bool) -> None:
        pin = services.worker_pin_set(worker=obj.worker, version=obj.release.version, reason=obj.reason,
                                      expires_at=obj.expires_at, actor=_actor(request))
        obj.pk = pin.pk

    def delete_model(self, request: HttpRequest, obj: WorkerPin) -> None:
        services.worker_pin_clear(worker=obj.worker, actor=_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WorkerPin]) -> None:
        for pin in queryset.select_related("worker"):
            services.worker_pin_clear(worker=pin.worker, actor=_actor(request))


class FailedFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("failed", "Failed installs"), ("ok", "Installed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[WorkerReleaseStatus]) -> QuerySet:
        from django.db.models import Q

        failed = Q(install_ok=False) | Q(self_test_ok=False) | Q(rolled_back_at__isnull=False)
        if self.value() == "failed":
            return queryset.filter(failed)
        if self.value() == "ok":
            return queryset.exclude(failed).filter(install_ok=True)
        return queryset


@admin.register(WorkerReleaseStatus)
class WorkerReleaseStatusAdmin(ReadOnlyModelAdmin):
    list_display = ("worker_id", "version", "last_stage", "last_ok", "install_ok", "self_test_ok",
                    "rolled_back_at", "updated_at")
    list_filter = (FailedFilter, "version", "last_stage")
    search_fields = ("worker_id", "version")


@admin.register(ReleaseAuditEvent)
class ReleaseAuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "action", "actor", "channel", "version", "rollout_id_ref")
    list_filter = ("action", "channel")
    search_fields = ("version", "actor", "channel")
    date_hierarchy = "created_at"
