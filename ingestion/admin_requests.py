"""Admin of data-subject requests, erasure receipts and the breach register (docs/PRIVACY.md).

Every save goes through ingestion/dsr.py or ingestion/breach.py, which audit it; nothing here is
deleted (a request is closed, a breach is closed, a receipt is proof).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin_tools import AuditedModelAdmin, ReadOnlyModelAdmin, admin_url
from core.audit import Actor
from ingestion.breach import EDITABLE, breach_deadline, breach_notification_draft, breach_open, breach_update
from ingestion.dsr import RequestError, request_close, request_extend, request_open
from ingestion.models import BreachIncident, DataSubjectRequest, ErasureReceipt
from ingestion.normalize import normalize_phone
from ingestion.privacy import receipt_document


class RequestAddForm(forms.ModelForm):
    phone = forms.CharField(max_length=100, help_text="Any spelling; stored only as a keyed hash and masked.")

    class Meta:
        model = DataSubjectRequest
        fields = ("kind", "channel", "phone", "reference", "notes", "received_at")

    def clean_phone(self) -> str:
        if not normalize_phone(self.cleaned_data["phone"]).usable:
            raise forms.ValidationError("Not a phone number that can be read.")
        return str(self.cleaned_data["phone"])


class RequestChangeForm(forms.ModelForm):
    extend_days = forms.IntegerField(required=False, min_value=1, max_value=30,
                                     help_text="Once only, up to 30 days; tell the person why.")
    extend_reason = forms.CharField(required=False, max_length=500)
    close_outcome = forms.CharField(required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                                    help_text="Closing: what was done (or the reasons for a refusal).")
    refused = forms.BooleanField(required=False)

    class Meta:
        model = DataSubjectRequest
        fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("extend_days") and not (data.get("extend_reason") or "").strip():
            raise forms.ValidationError("An extension needs a reason.")
        return data


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(AuditedModelAdmin):
    list_display = ("id", "kind", "channel", "phone_masked", "status", "received_at", "due_at", "days_left",
                    "extended_days", "reference")
    list_filter = ("status", "kind", "channel")
    search_fields = ("reference",)
    ordering = ("due_at",)
    deletion_note = "Requests are closed, not deleted: they are the record that you answered."
    _shown = ("kind", "channel", "phone_masked", "phone_hmac", "reference", "notes", "received_at",
              "due_at", "status", "extended_days", "extension_reason", "extended_at", "outcome", "closed_at",
              "created_by", "actions_taken")

    @admin.display(description="days left")
    def days_left(self, obj: DataSubjectRequest) -> str:
        if not obj.is_open:
            return "-"
        return f"{(obj.due_at - timezone.now()).total_seconds() / 86400:.1f}"

    @admin.display(description="actions taken")
    def actions_taken(self, obj: DataSubjectRequest) -> str:
        rows = [(f"{timezone.localtime(a.at):%Y-%m-%d %H:%M}", a.get_kind_display(), a.actor,
                 json.dumps(a.detail, ensure_ascii=False)) for a in obj.actions.all()]
        return format_html_join("", "<div>{} {} by {}: {}</div>", rows) or "-"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = RequestAddForm if obj is None else RequestChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["kind", "channel", "phone", "reference", "notes", "received_at"]
        editable = ["extend_days", "extend_reason", "close_outcome", "refused"] if obj.is_open else []
        return [*self._shown, *editable]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self._shown

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"received_at": timezone.now()}

    def save_model(self, request: HttpRequest, obj: DataSubjectRequest, form: Any, change: bool) -> None:
        actor, data = Actor.from_user(request.user), form.cleaned_data
        if not change:
            made = request_open(kind=data["kind"], channel=data["channel"], phone=data["phone"], actor=actor,
                                reference=data.get("reference", ""), notes=data.get("notes", ""),
                                received_at=data.get("received_at"))
            obj.pk = made.pk
            return
        try:
            if data.get("extend_days"):
                request_extend(request_id=obj.pk, days=data["extend_days"], reason=data["extend_reason"],
                               actor=actor)
            if (data.get("close_outcome") or "").strip():
                request_close(request_id=obj.pk, outcome=data["close_outcome"], refused=data["refused"],
                              actor=actor)
        except RequestError as exc:
            self.message_user(request, str(exc), level="error")



@admin.register(ErasureReceipt)
class ErasureReceiptAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "phone_masked", "erased_at", "erased_by", "counts", "suppressed", "request",
                    "document")
    search_fields = ("=phone_hmac", "reason")
    ordering = ("-erased_at",)

    @admin.display(description="for the requester")
    def document(self, obj: ErasureReceipt) -> str:
        url = reverse("admin:ingestion_erasurereceipt_document", args=[obj.pk])
        return format_html('<a href="{}">receipt (JSON)</a>', url)

    def get_urls(self) -> list[Any]:
        view = admin_url(self, "<int:pk>/document/", self.document_view, "ingestion_erasurereceipt_document")
        return [view, *super().get_urls()]

    def document_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The receipt as the requester gets it: no number in clear (read-only, staff who may view)."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        receipt = get_object_or_404(ErasureReceipt, pk=pk)
        response = HttpResponse(json.dumps(receipt_document(receipt=receipt), ensure_ascii=False, indent=2),
                                content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="erasure-receipt-{receipt.pk}.json"'
        response["Cache-Control"] = "private, no-store"
        return response


@admin.register(BreachIncident)
class BreachIncidentAdmin(AuditedModelAdmin):
    list_display = ("id", "title", "discovered_at", "deadline", "notified_at", "closed_at")
    ordering = ("-discovered_at",)
    fields = (*EDITABLE, "deadline", "notification_draft", "created_by", "created_at")
    readonly_fields = ("deadline", "notification_draft", "created_by", "created_at")
    deletion_note = "Breaches are closed, not deleted: the register is the record of them."

    @admin.display(description="notify the authority by")
    def deadline(self, obj: BreachIncident) -> Any:
        return breach_deadline(obj) if obj.pk else "-"

    @admin.display(description="notification draft (review before sending)")
    def notification_draft(self, obj: BreachIncident) -> str:
        if not obj.pk:
            return "-"
        draft = breach_notification_draft(incident=obj)
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", draft)

    def save_model(self, request: HttpRequest, obj: BreachIncident, form: Any, change: bool) -> None:
        actor, data = Actor.from_user(request.user), form.cleaned_data
        values = {name: data[name] for name in EDITABLE if name in data}
        if not change:
            made = breach_open(actor=actor, **values)
            obj.pk = made.pk
            return
        changed = {name: values[name] for name in form.changed_data if name in values}
        breach_update(incident=obj, values=changed, actor=actor)
