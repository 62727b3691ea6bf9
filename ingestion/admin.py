"""Admin of ingestion: leads (search by any phone format, filters, streaming export) and read-only
fingerprints and counters.

Phones are personal data: staff without `ingestion.view_pii` see them masked (+9665****4567) in the
list, the detail page, search results and both exports (docs/PRIVACY.md, "Who sees what").

The lead table grows to millions of rows, so nothing here asks it for DISTINCT values: provider and
worker filters read the small counter table, the city filter only the latest leads, and the day
filter offers fixed choices instead of a date hierarchy (which would scan every row for its dates).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.safestring import SafeString

from core.admin_fields import labelled_fields
from core.admin_tools import (
    AuditedModelAdmin,
    ReadOnlyModelAdmin,
    admin_export_record,
    field_display,
    value_list_filter,
)
from core.csv import csv_response
from core.logging import mask_pii

# Importing them registers the suppression list's, requests', receipts' and breaches' admins too.
from ingestion import admin_requests  # noqa: F401
from ingestion.admin_privacy import subject_export_view
from ingestion.cities import city_canonical
from ingestion.exports import EXPORT_FIELDS, LeadExport, jsonl_line, lead_export, value_masked
from ingestion.models import IngestCounter, Lead, LeadFingerprint
from ingestion.selectors import counter_providers, counter_worker_ids, lead_recent_cities, lead_search

VIEW_PII = "ingestion.view_pii"
# Left out of an export because their number is suppressed (the admin export says so in this header).
LEFT_OUT_HEADER = "X-LeadOps-Suppressed-Left-Out"


def can_view_pii(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_PII))


def _prepared(request: HttpRequest, queryset: QuerySet[Lead], export_format: str) -> LeadExport:
    """The export without suppressed numbers, audited with what it writes and what it left out."""
    export = lead_export(queryset=queryset)
    admin_export_record(request, export.queryset, action="leads.export", export_format=export_format,
                        extra={"left_out_suppressed": export.left_out})
    if export.left_out:
        messages.info(request, f"{export.left_out} lead(s) with a suppressed number were left out of the "
                               "export.")
    return export


def _export_name(extension: str) -> str:
    return f"leads-{timezone.localtime():%Y%m%d-%H%M%S}.{extension}"


ProviderFilter = value_list_filter(title="provider", parameter_name="provider", field="provider",
                                   values=counter_providers)
WorkerFilter = value_list_filter(title="worker", parameter_name="worker_id", field="worker_id",
                                 values=counter_worker_ids)
class CityFilter(admin.SimpleListFilter):
    """The most frequent cities lately, each once whatever its spellings; any spelling filters too."""

    title = "city (most frequent lately)"
    parameter_name = "city"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return lead_recent_cities()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(city_normalized=city_canonical(value).key) if value else queryset


class LocalDayFilter(admin.SimpleListFilter):
    """Filter by the local day of TIME_ZONE the lead was received on."""

    title = "day received (local)"
    parameter_name = "day"
    _CHOICES = (
        ("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
    )

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, str], ...]:
        return self._CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        today = timezone.localdate()
        value = self.value()
        if value == "today":
            return queryset.filter(local_day=today)
        if value == "yesterday":
            return queryset.filter(local_day=today - dt.timedelta(days=1))
        if value == "7d":
            return queryset.filter(local_day__gte=today - dt.timedelta(days=6))
        if value == "30d":
            return queryset.filter(local_day__gte=today - dt.timedelta(days=29))
        return queryset


@admin.register(Lead)
class LeadAdmin(AuditedModelAdmin):
    list_display = ("id", "name", "phone_e164", "phone_valid", "phone_type", "city", "provider", "worker_id",
                    "local_day", "created_at")
    list_filter = (ProviderFilter, WorkerFilter, CityFilter, "phone_valid", "phone_type", LocalDayFilter)
    # The search box shows when search_fields is set; `get_search_results` does the real work.
    search_fields = ("name_normalized", "phone_e164")
    search_help_text = "A phone in any format (0501234567, +966 50 123 4567, ٠٥٠١٢٣٤٥٦٧) or part of a name."
    ordering = ("-id",)
    list_per_page = 100
    # Counting millions of rows twice per page is what makes large changelists slow.
    show_full_result_count = False
    actions = ("export_csv", "export_jsonl")
    deletion_note = ("Leads are not deleted here: a number's leads are erased through the data-subject "
                     "erase (privacy_erase), which suppresses the number and is audited.")
    change_list_template = "admin/ingestion/lead/change_list.html"

    def get_list_display(self, request: HttpRequest) -> Any:
        shown: Any = super().get_list_display(request)
        if can_view_pii(request):
            return tuple(shown)
        # A worker may have put a number in the name too (a name is what scrapers find first).
        swap = {"phone_e164": "phone_masked", "name": "name_masked"}
        return tuple(swap.get(name, name) for name in shown)

    def action_checkbox(self, obj: Lead) -> SafeString:
        # Named by id, not by the lead's text: a row's label is read out, and holds no phone either way.
        attrs = {"class": "action-select", "aria-label": f"Select lead {obj.pk} for an action"}
        return forms.CheckboxInput(attrs, lambda value: False).render(ACTION_CHECKBOX_NAME, str(obj.pk))

    @admin.display(description="phone e164")
    def phone_masked(self, obj: Lead) -> str:
        return mask_pii(obj.phone_e164 or "")

    @admin.display(description="name")
    def name_masked(self, obj: Lead) -> str:
        return mask_pii(obj.name)

    def get_fields(self, request: HttpRequest, obj: Lead | None = None) -> Any:
        fields = [field.name for field in Lead._meta.fields if field.name != "id"]
        if can_view_pii(request):
            return ["extra_fields" if name == "extra" else name for name in fields]
        # Every text field, not only the phone ones: a number written in a name also sits in its
        # normalized form, and a worker may put one in a URL or in extra (the exports do the same).
        return [_MASKED_FIELDS.get(name, name) for name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Lead | None = None) -> Any:
        return self.get_fields(request, obj)

    extra_fields = field_display("extra", description="extra")

    def lead_label(self, request: HttpRequest, obj: Lead) -> str:
        """The lead as its title, breadcrumb and history name it: in full with view_pii, else masked."""
        text = f"{obj.name} ({obj.phone_e164 or 'invalid phone'})"
        return text if can_view_pii(request) else mask_pii(text)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> Any:
        obj = self.get_object(request, object_id)
        label = self.lead_label(request, obj) if obj else ""
        named = {"subtitle": label, "lead_label": label} if obj else {}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **named})

    def get_urls(self) -> list[Any]:
        urls = [path("privacy-export/", self.admin_site.admin_view(subject_export_view),
                     name="ingestion_lead_privacy_export")]
        return urls + super().get_urls()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        return lead_search(queryset=queryset, term=search_term), False

    # Leads come only from ingestion, which normalizes them; an edit here would skip that.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Lead | None = None) -> bool:
        return False

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ingestion.export_lead")

    @admin.action(permissions=["export"], description="Export selected leads as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Lead]) -> StreamingHttpResponse:
        export = _prepared(request, queryset, "csv")
        response = csv_response(header=EXPORT_FIELDS, rows=export.rows(masked=not can_view_pii(request)),
                                filename=_export_name("csv"))
        response[LEFT_OUT_HEADER] = str(export.left_out)
        return response

    @admin.action(permissions=["export"], description="Export selected leads as JSON Lines")
    def export_jsonl(self, request: HttpRequest, queryset: QuerySet[Lead]) -> StreamingHttpResponse:
        export = _prepared(request, queryset, "jsonl")
        lines = map(jsonl_line, export.records(masked=not can_view_pii(request)))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{_export_name("jsonl")}"'
        response[LEFT_OUT_HEADER] = str(export.left_out)
        return response


def _masked_field(field: Any) -> Any:
    """A read-only display of one lead field with every phone and email in it masked."""

    def display(obj: Lead) -> Any:
        value = value_masked(getattr(obj, field.attname))
        return labelled_fields(value) if isinstance(value, dict | list) else value

    display.short_description = field.verbose_name  # type: ignore[attr-defined]
    display.__name__ = f"{field.name}_masked"
    return display


# Without view_pii the detail page shows every text field through the mask (docs/PRIVACY.md).
_MASKED_FIELDS = {field.name: _masked_field(field) for field in Lead._meta.fields
                  if field.get_internal_type() in ("CharField", "TextField", "JSONField")}


@admin.register(LeadFingerprint)
class LeadFingerprintAdmin(ReadOnlyModelAdmin):
    list_display = ("fingerprint", "scope", "lead_id", "created_at")
    search_fields = ("=fingerprint",)
    # The primary key orders by its index; an order by created_at would sort millions of rows.
    ordering = ("fingerprint",)
    show_full_result_count = False


@admin.register(IngestCounter)
class IngestCounterAdmin(ReadOnlyModelAdmin):
    list_display = ("hour", "local_day", "provider", "worker_id", "added", "duplicates",
                    "duplicates_in_batch", "duplicates_existing", "invalid")
    list_filter = ("provider", "local_day")
    search_fields = ("=worker_id", "=provider")
    ordering = ("-hour", "provider", "worker_id")

