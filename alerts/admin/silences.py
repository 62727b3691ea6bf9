"""Admin of silences: add with matchers one per line, expire early; never edited or deleted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone

from alerts.admin.common import (
    WEEKDAYS,
    badge_html,
    form_error_add,
    matchers_field,
    matchers_from_text,
    post_button,
)
from alerts.matchers import MatcherError, matchers_text
from alerts.models import Silence
from alerts.selectors import silence_state
from alerts.services import AlertsError, silence_check, silence_create, silence_expire
from core.admin_tools import AuditedModelAdmin, admin_url
from core.audit import Actor


class SilenceForm(forms.ModelForm):
    matchers_text = matchers_field(required=True, help_end=" (all must match).")
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Recurring window: only on these local weekdays.",
    )

    class Meta:
        model = Silence
        fields = ["starts_at", "ends_at", "comment", "weekdays", "hour_start", "hour_end"]
        help_texts = {"hour_start": "Recurring window: local hour it opens (0-23).",
                      "hour_end": "Local hour it closes (0-24); at or before the start it closes the next "
                                  "morning (22 to 6 is one night)."}

    def clean(self) -> dict[str, Any]:
        # The service's own checks, so that saving never refuses what the form let through.
        data = super().clean() or {}
        if all(name in data for name in ("matchers_text", "starts_at", "ends_at", "comment")):
            try:
                silence_check(matchers=data["matchers_text"], starts_at=data["starts_at"],
                              ends_at=data["ends_at"], comment=data["comment"],
                              weekdays=data.get("weekdays") or [], hour_start=data.get("hour_start"),
                              hour_end=data.get("hour_end"))
            except AlertsError as exc:
                form_error_add(self, exc, renamed={"matchers": "matchers_text"})
        return data

    def clean_matchers_text(self) -> list[dict[str, str]]:
        try:
            matchers = matchers_from_text(self.cleaned_data["matchers_text"])
        except MatcherError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not matchers:
            raise forms.ValidationError("At least one matcher.")
        return matchers


# What a silence shows, in the list and on its page.
SILENCE_COLUMNS = (
    "state_badge", "matchers_display", "starts_at", "ends_at", "window", "created_by", "comment",
)


@admin.register(Silence)
class SilenceAdmin(AuditedModelAdmin):
    form = SilenceForm
    list_display = ["id", *SILENCE_COLUMNS]
    search_fields = ["comment", "created_by"]
    actions = ["expire_selected"]

    def get_fields(self, request: HttpRequest, obj: Silence | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("matchers_text", "starts_at", "ends_at", "comment", "weekdays", "hour_start", "hour_end")
        return (*SILENCE_COLUMNS, "expired_early_at", "one_click")

    def get_readonly_fields(self, request: HttpRequest, obj: Silence | None = None) -> tuple[str, ...]:
        return () if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        now = timezone.now()
        return {
            "starts_at": now,
            "ends_at": now + dt.timedelta(hours=2),
            "matchers_text": request.GET.get("matchers", ""),
        }

    @admin.display(description="state")
    def state_badge(self, silence: Silence) -> str:
        return badge_html(silence_state(silence, timezone.now()))

    @admin.display(description="matchers")
    def matchers_display(self, silence: Silence) -> str:
        return matchers_text(silence.matchers)

    @admin.display(description="recurring window")
    def window(self, silence: Silence) -> str:
        if not silence.weekdays:
            return "-"
        days = ", ".join(dict(WEEKDAYS)[d][:3] for d in silence.weekdays)
        start = silence.hour_start if silence.hour_start is not None else 0
        end = silence.hour_end if silence.hour_end is not None else 24
        return f"{days} {start:02d}:00-{end:02d}:00{' (into the next day)' if end <= start else ''}"

    @admin.display(description="actions")
    def one_click(self, silence: Silence) -> str:
        if silence.ends_at <= timezone.now():
            return "-"
        return post_button(reverse("admin:alerts_silence_expire", args=[silence.pk]), "Expire now")

    def save_model(self, request: HttpRequest, obj: Silence, form: forms.ModelForm, change: bool) -> None:
        # The form ran the service's checks (SilenceForm.clean): this save is not refused.
        data = form.cleaned_data
        created = silence_create(
            matchers=data["matchers_text"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            created_by=request.user.get_username(),
            comment=data["comment"],
            weekdays=data.get("weekdays") or [],
            hour_start=data.get("hour_start"),
            hour_end=data.get("hour_end"),
            actor=Actor.from_user(request.user),
        )
        obj.pk = created.pk
        obj.__dict__.update(Silence.objects.filter(pk=created.pk).values().get())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A silence is changed by expiring it and making a new one (Alertmanager's rule).
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # expired silences stay as the record of who muted what

    def get_urls(self) -> list[Any]:
        return [admin_url(self, "<int:silence_id>/expire/", self.expire_view, "alerts_silence_expire"),
                *super().get_urls()]

    def expire_view(self, request: HttpRequest, silence_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        back = HttpResponseRedirect(reverse("admin:alerts_silence_change", args=[silence_id]))
        if not request.user.has_perm("alerts.change_silence"):
            self.message_user(request, "You may not expire silences.", messages.ERROR)
            return back
        silence = get_object_or_404(Silence, pk=silence_id)
        if silence_expire(silence=silence, actor=Actor.from_user(request.user)):
            self.message_user(request, "The silence has ended.", messages.SUCCESS)
        else:
            self.message_user(request, "The silence had already ended.", messages.WARNING)
        return back

    @admin.action(description="Expire the selected silences now", permissions=["expire"])
    def expire_selected(self, request: HttpRequest, queryset: QuerySet[Silence]) -> None:
        actor = Actor.from_user(request.user)
        expired = [s for s in queryset if silence_expire(silence=s, actor=actor)]
        self.message_user(request, f"{len(expired)} silence(s) expired.", messages.SUCCESS)

    def has_expire_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.change_silence")
