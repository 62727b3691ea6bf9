"""Admin of receivers: URLs and secrets stored encrypted and never shown again; a send-test button."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from alerts.admin.common import form_error_add, post_button
from alerts.models import (
    DeliveryAttempt,
    Receiver,
    ReceiverKind,
)
from alerts.services import (
    AlertsError,
    receiver_check,
    receiver_set,
    receiver_test,
)
from core.admin_tools import AuditedModelAdmin, admin_url
from core.audit import Actor


class ReceiverForm(forms.ModelForm):
    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook URL (a credential: stored encrypted, never shown). "
        "Leave empty to keep the current one.",
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook only: HMAC key of X-LeadOps-Signature. Leave empty to keep it.",
    )

    class Meta:
        model = Receiver
        fields = ["name", "kind", "url", "secret", "addresses", "send_resolved", "enabled"]

    def clean(self) -> dict[str, Any]:
        # The service's own checks, so that saving never refuses what the form let through.
        data = super().clean() or {}
        kind = data.get("kind")
        if not kind:
            return data
        try:
            receiver_check(kind=kind, url=data.get("url") or None, addresses=data.get("addresses"),
                           enabled=bool(data.get("enabled")))
        except AlertsError as exc:
            form_error_add(self, exc)
            return data
        if kind not in (ReceiverKind.EMAIL, ReceiverKind.DEMO) and not data.get("url") and not (
                self.instance.pk and self.instance.url_encrypted):
            self.add_error("url", "This kind of receiver needs its URL.")
        return data


@admin.register(Receiver)
class ReceiverAdmin(AuditedModelAdmin):
    form = ReceiverForm
    list_display = ["name", "kind", "destination", "signed", "send_resolved", "enabled", "last_delivery"]
    list_filter = ["kind", "enabled"]
    deletion_note = ("Receivers are not deleted here: untick Enabled to stop sending to one; routes and "
                     "the delivery log keep naming it.")
    actions = ["send_test"]

    def get_fields(self, request: HttpRequest, obj: Receiver | None = None) -> tuple[str, ...]:
        fields = ("name", "kind", "url", "secret", "addresses", "send_resolved", "enabled")
        return fields if obj is None else (*fields, "destination", "one_click")

    def get_readonly_fields(self, request: HttpRequest, obj: Receiver | None = None) -> list[str]:
        # The name is how commands find a receiver (alert_receiver_set, alert_test): fixed once made.
        return [] if obj is None else ["name", "destination", "one_click"]

    @admin.display(description="sends to")
    def destination(self, receiver: Receiver) -> str:
        if receiver.kind == ReceiverKind.DEMO:
            return "Admin › Demo inbox"
        return receiver.addresses if receiver.kind == ReceiverKind.EMAIL else receiver.url_hint

    @admin.display(description="signed", boolean=True)
    def signed(self, receiver: Receiver) -> bool:
        return bool(receiver.secret_encrypted)

    @admin.display(description="last delivery")
    def last_delivery(self, receiver: Receiver) -> str:
        attempt = DeliveryAttempt.objects.filter(receiver=receiver).order_by("-started_at").first()
        if attempt is None:
            return "-"
        return (
            f"{'ok' if attempt.ok else 'failed'} {timezone.localtime(attempt.started_at):%Y-%m-%d %H:%M:%S}"
        )

    @admin.display(description="actions")
    def one_click(self, receiver: Receiver) -> str:
        return post_button(
            reverse("admin:alerts_receiver_test", args=[receiver.pk]), "Send a test notification"
        )

    @method_decorator(sensitive_post_parameters("url", "secret"))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Receiver, form: forms.ModelForm, change: bool) -> None:
        # The form ran the service's checks (ReceiverForm.clean): this save is not refused.
        data = form.cleaned_data
        saved = receiver_set(
            name=obj.name,
            kind=data["kind"],
            url=data.get("url") or None,
            secret=data.get("secret") or None,
            addresses=data.get("addresses") or "",
            send_resolved=data["send_resolved"],
            enabled=data["enabled"],
            actor=Actor.from_user(request.user),
        )
        obj.pk = saved.pk
        obj.__dict__.update(Receiver.objects.filter(pk=saved.pk).values().get())

    def get_urls(self) -> list[Any]:
        return [admin_url(self, "<int:receiver_id>/test/", self.test_view, "alerts_receiver_test"),
                *super().get_urls()]

    def _test(self, request: HttpRequest, receiver: Receiver) -> None:
        attempt = receiver_test(receiver=receiver)
        self.log_change(request, receiver, "Sent a test notification.")
        if attempt.ok:
            self.message_user(
                request, f"Delivered to {receiver.name} in {attempt.latency_ms} ms.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"Not delivered to {receiver.name}: {attempt.error}", messages.ERROR)

    def test_view(self, request: HttpRequest, receiver_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        receiver = get_object_or_404(Receiver, pk=receiver_id)
        if request.user.has_perm("alerts.change_receiver"):
            self._test(request, receiver)
        else:
            self.message_user(request, "You may not test receivers.", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:alerts_receiver_change", args=[receiver_id]))

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[Receiver]) -> None:
        for receiver in queryset:
            self._test(request, receiver)
