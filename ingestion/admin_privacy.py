"""Admin of the personal-data tools: the suppression list and the data-subject export download.

Both go through ingestion/privacy.py, which audits every request without the number in clear.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from core.admin_tools import AuditedModelAdmin
from core.audit import Actor
from core.csv import csv_response
from ingestion.dsr import RequestError, request_export, request_for_subject
from ingestion.models import SuppressedPhone
from ingestion.normalize import normalize_phone
from ingestion.privacy import (
    EXPORT_FIELDS,
    export_text,
    privacy_export,
    subject_from_phone,
    suppression_add,
    suppression_remove_digest,
)


def _phone_field() -> forms.CharField:
    return forms.CharField(max_length=100,
                           help_text="Any spelling: 0501234567, +966 50 123 4567, ٠٥٠١٢٣٤٥٦٧.")


def _clean_phone(value: str) -> str:
    phone = normalize_phone(value)
    if not phone.usable:
        raise forms.ValidationError("Not a phone number that can be read.")
    return value


class SuppressionAddForm(forms.ModelForm):
    phone = _phone_field()

    class Meta:
        model = SuppressedPhone
        fields = ("phone", "reason")

    def clean_phone(self) -> str:
        return _clean_phone(self.cleaned_data["phone"])


@admin.register(SuppressedPhone)
class SuppressedPhoneAdmin(AuditedModelAdmin):
    """Entries are added by number (hashed on save) and removed; never edited."""

    list_display = ("phone_masked", "reason", "created_by", "created_at")
    search_fields = ("reason",)
    ordering = ("-created_at",)
    form = SuppressionAddForm
    actions = ("delete_selected",)

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str
                           ) -> tuple[QuerySet, bool]:
        # A number typed in the search box is found by its hash, like every other lookup.
        if normalize_phone(search_term).usable:
            return queryset.filter(digest=subject_from_phone(phone=search_term).digest), False
        return super().get_search_results(request, queryset, search_term)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["phone", "reason"] if obj is None else ["phone_masked", "reason", "created_by", "created_at"]

    def save_model(self, request: HttpRequest, obj: SuppressedPhone, form: Any, change: bool) -> None:
        entry = suppression_add(phone=form.cleaned_data["phone"], reason=form.cleaned_data["reason"],
                                actor=Actor.from_user(request.user))
        obj.digest, obj.phone_masked, obj.created_at = entry.digest, entry.phone_masked, entry.created_at
        obj.created_by = entry.created_by

    def delete_model(self, request: HttpRequest, obj: SuppressedPhone) -> None:
        suppression_remove_digest(digest=obj.digest, masked=obj.phone_masked,
                                  actor=Actor.from_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SuppressedPhone]) -> None:
        for entry in queryset:
            self.delete_model(request, entry)


class SubjectExportForm(forms.Form):
    phone = _phone_field()
    format = forms.ChoiceField(choices=[("json", "JSON"), ("csv", "CSV")])
    request = forms.IntegerField(required=False, min_value=1, label="Data-subject request (id)",
                                 help_text="Optional: link the download to this open request (the number "
                                           "must be the request's).")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("request") and data.get("phone"):
            try:
                subject = subject_from_phone(phone=data["phone"])
                request_for_subject(request_id=data["request"], subject=subject)
            except RequestError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data

    def clean_phone(self) -> str:
        return _clean_phone(self.cleaned_data["phone"])


def subject_export_view(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Download everything held on a number as JSON or CSV (staff with ingestion.view_pii only)."""
    if not request.user.has_perm("ingestion.view_pii"):
        raise PermissionDenied
    form = SubjectExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = f"subject-export-{timezone.localtime():%Y%m%d-%H%M%S}"
        fmt, phone = form.cleaned_data["format"], form.cleaned_data["phone"]
        actor = Actor.from_user(request.user)
        if form.cleaned_data.get("request"):
            data, text = request_export(request_id=form.cleaned_data["request"], phone=phone, actor=actor,
                                        file_name=f"{name}.{fmt}")
        else:
            data = privacy_export(phone=phone, actor=actor)
            text = export_text(data)
        if fmt == "csv":
            rows = ([lead[field] for field in EXPORT_FIELDS] for lead in data["leads"])
            return csv_response(header=EXPORT_FIELDS, rows=rows, filename=f"{name}.csv")
        response = HttpResponse(text, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    context = {**admin.site.each_context(request), "form": form, "title": "Data-subject export"}
    return TemplateResponse(request, "admin/ingestion/privacy_export.html", context)
