"""Admin of alerting: rules, alerts with their labels and timeline, silences, routes, receivers, the log.

Alerts, notifications and delivery attempts are written by the evaluator only: read-only here.
One-click buttons on the change pages (silence this alert, expire this silence, send a test) submit
the page's own form, with its CSRF token, to a small POST-only view that checks the permission, calls
the service, and records the action in the admin log.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from alerts.matchers import MatcherError, matcher_check, matcher_parse, matchers_text
from alerts.models import (
    Alert,
    AlertEvent,
    AlertRule,
    AlertState,
    DeliveryAttempt,
    Notification,
    Receiver,
    ReceiverKind,
    Route,
    Silence,
)
from alerts.rules import DEFAULTS
from alerts.selectors import silence_state
from alerts.services import (
    AlertsError,
    receiver_set,
    receiver_test,
    route_save,
    routes_delete,
    rule_set,
    silence_create,
    silence_expire,
    silence_from_alert,
)
from core.admin_tools import ReadOnlyMixin, ReadOnlyModelAdmin
from core.audit import Actor

STATE_COLOURS = {
    "firing": "#c62828",
    "pending": "#ef6c00",
    "resolved": "#2e7d32",
    "active": "#c62828",
    "expired": "#757575",
    "waiting for its window": "#ef6c00",
}
WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]


def _badge(text: str) -> str:
    return format_html(
        '<span style="display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;'
        'background:{};font-weight:600">{}</span>',
        STATE_COLOURS.get(text, "#546e7a"),
        text,
    )


def _labels_html(labels: dict[str, str]) -> str:
    return format_html_join(" ", '<code style="white-space:nowrap">{}={}</code>', sorted(labels.items()))


def _post_button(url: str, text: str) -> str:
    # `formaction` submits the change page's own form (and its CSRF token) to `url`.
    return format_html(
        '<button type="submit" class="button" formaction="{}" formmethod="post" formnovalidate>{}</button>',
        url,
        text,
    )


def _matchers_from_text(text: str) -> list[dict[str, str]]:
    return [matcher_parse(line) for line in text.splitlines() if line.strip()]


# ----- rules ------------------------------------------------------------------------------------


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["enabled", "threshold", "for_seconds", "severity", "labels"]

    def clean_threshold(self) -> float:
        if self.cleaned_data["threshold"] < 0:
            raise forms.ValidationError("Zero or more.")
        return self.cleaned_data["threshold"]

    def clean_labels(self) -> dict[str, str]:
        labels = self.cleaned_data.get("labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise forms.ValidationError('Labels are a JSON object of text to text, e.g. {"team": "fleet"}.')
        if {"alertname", "severity"} & set(labels):
            raise forms.ValidationError("alertname and severity are set by the rule itself.")
        return labels


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["kind", "enabled", "threshold", "meaning", "for_seconds", "severity", "firing"]
    list_editable = ["enabled", "threshold", "for_seconds", "severity"]
    readonly_fields = ["kind", "meaning"]
    fields = ["kind", "meaning", "enabled", "threshold", "for_seconds", "severity", "labels"]

    @admin.display(description="threshold means")
    def meaning(self, rule: AlertRule) -> str:
        return DEFAULTS[rule.kind].meaning if rule.kind in DEFAULTS else ""

    @admin.display(description="firing")
    def firing(self, rule: AlertRule) -> int:
        return rule.alerts.filter(state=AlertState.FIRING).count()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the rules are built in

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AlertRule, form: forms.ModelForm, change: bool) -> None:
        rule_set(
            kind=obj.kind,
            threshold=obj.threshold,
            for_seconds=obj.for_seconds,
            enabled=obj.enabled,
            severity=obj.severity,
            labels=obj.labels or {},
            actor=Actor.from_user(request.user),
        )


# ----- alerts -----------------------------------------------------------------------------------


class AlertEventInline(ReadOnlyMixin, admin.TabularInline):
    model = AlertEvent
    fields = readonly_fields = ("at", "kind", "detail")
    extra = 0
    verbose_name_plural = "timeline"


@admin.register(Alert)
class AlertAdmin(ReadOnlyModelAdmin):
    list_display = [
        "alertname",
        "state_badge",
        "labels_text",
        "summary",
        "starts_at",
        "ends_at",
        "silence_link",
    ]
    list_filter = ["state", "rule"]
    search_fields = ["fingerprint"]
    date_hierarchy = "updated_at"
    inlines = [AlertEventInline]
    fields = readonly_fields = (
        "alertname",
        "state_badge",
        "labels_text",
        "annotations",
        "value",
        "fingerprint",
        "active_since",
        "starts_at",
        "ends_at",
        "last_evaluated_at",
        "one_click",
    )
    actions = ["silence_selected"]

    @admin.display(description="alert")
    def alertname(self, alert: Alert) -> str:
        return alert.labels.get("alertname", "")

    @admin.display(description="state", ordering="state")
    def state_badge(self, alert: Alert) -> str:
        return _badge(alert.state)

    @admin.display(description="labels")
    def labels_text(self, alert: Alert) -> str:
        return _labels_html(alert.labels)

    @admin.display(description="summary")
    def summary(self, alert: Alert) -> str:
        return alert.annotations.get("summary", "")

    @admin.display(description="")
    def silence_link(self, alert: Alert) -> str:
        if alert.state == AlertState.RESOLVED:
            return ""
        return format_html('<a href="{}">silence…</a>', reverse("admin:alerts_alert_change", args=[alert.pk]))

    @admin.display(description="actions")
    def one_click(self, alert: Alert) -> str:
        if alert.state == AlertState.RESOLVED:
            return "-"
        return _post_button(
            reverse("admin:alerts_alert_silence", args=[alert.pk]), "Silence this alert for 2 hours"
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:alert_id>/silence/",
                self.admin_site.admin_view(self.silence_view),
                name="alerts_alert_silence",
            ),
            *super().get_urls(),
        ]

    def silence_view(self, request: HttpRequest, alert_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("alerts.add_silence"):
            self.message_user(request, "You may not create silences.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:alerts_alert_change", args=[alert_id]))
        alert = get_object_or_404(Alert, pk=alert_id)
        silence = silence_from_alert(alert=alert, created_by=request.user.get_username(),
                                     actor=Actor.from_user(request.user))
        self.log_change(request, silence, f"Created from alert {alert.fingerprint}.")
        self.message_user(
            request,
            f"Silenced until {timezone.localtime(silence.ends_at):%Y-%m-%d %H:%M}; "
            "change the end or expire it here.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:alerts_silence_change", args=[silence.pk]))

    @admin.action(description="Silence the selected alerts for 2 hours", permissions=["silence"])
    def silence_selected(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        actor = Actor.from_user(request.user)
        made = [silence_from_alert(alert=alert, created_by=actor.name, actor=actor) for alert in queryset]
        for silence in made:
            self.log_change(request, silence, "Created from the alerts list.")
        self.message_user(request, f"{len(made)} silence(s) created.", messages.SUCCESS)

    def has_silence_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.add_silence")


# ----- silences ---------------------------------------------------------------------------------


class SilenceForm(forms.ModelForm):
    matchers_text = forms.CharField(
        label="Matchers",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: label=value, label!=value, label=~regex, label!~regex (all must match).",
    )
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

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        starts_at, ends_at = data.get("starts_at"), data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            self.add_error("ends_at", "A silence must end after it starts.")
        start, end = data.get("hour_start"), data.get("hour_end")
        if (start is not None and start > 24) or (end is not None and end > 24):
            self.add_error("hour_end", "Hours are 0 to 24.")
        elif start is not None and end is not None and end <= start:
            self.add_error("hour_end", "The window's end hour must be after its start hour.")
        return data

    def clean_matchers_text(self) -> list[dict[str, str]]:
        try:
            matchers = _matchers_from_text(self.cleaned_data["matchers_text"])
        except MatcherError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not matchers:
            raise forms.ValidationError("At least one matcher.")
        return matchers


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    form = SilenceForm
    list_display = [
        "id",
        "state_badge",
        "matchers_display",
        "starts_at",
        "ends_at",
        "window",
        "created_by",
        "comment",
    ]
    search_fields = ["comment", "created_by"]
    actions = ["expire_selected"]

    def get_fields(self, request: HttpRequest, obj: Silence | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("matchers_text", "starts_at", "ends_at", "comment", "weekdays", "hour_start", "hour_end")
        return (
            "state_badge",
            "matchers_display",
            "starts_at",
            "ends_at",
            "window",
            "created_by",
            "comment",
            "expired_early_at",
            "one_click",
        )

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
        return _badge(silence_state(silence, timezone.now()))

    @admin.display(description="matchers")
    def matchers_display(self, silence: Silence) -> str:
        return matchers_text(silence.matchers)

    @admin.display(description="recurring window")
    def window(self, silence: Silence) -> str:
        if not silence.weekdays:
            return "-"
        days = ", ".join(dict(WEEKDAYS)[d][:3] for d in silence.weekdays)
        return f"{days} {silence.hour_start or 0:02d}:00-{silence.hour_end or 24:02d}:00"

    @admin.display(description="actions")
    def one_click(self, silence: Silence) -> str:
        if silence.ends_at <= timezone.now():
            return "-"
        return _post_button(reverse("admin:alerts_silence_expire", args=[silence.pk]), "Expire now")

    def save_model(self, request: HttpRequest, obj: Silence, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        try:
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
        except AlertsError as exc:
            raise forms.ValidationError(str(exc)) from exc
        obj.pk = created.pk
        obj.__dict__.update(Silence.objects.filter(pk=created.pk).values().get())

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A silence is changed by expiring it and making a new one (Alertmanager's rule).
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # expired silences stay as the record of who muted what

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:silence_id>/expire/",
                self.admin_site.admin_view(self.expire_view),
                name="alerts_silence_expire",
            ),
            *super().get_urls(),
        ]

    def expire_view(self, request: HttpRequest, silence_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        back = HttpResponseRedirect(reverse("admin:alerts_silence_change", args=[silence_id]))
        if not request.user.has_perm("alerts.change_silence"):
            self.message_user(request, "You may not expire silences.", messages.ERROR)
            return back
        silence = get_object_or_404(Silence, pk=silence_id)
        if silence_expire(silence=silence, actor=Actor.from_user(request.user)):
            self.log_change(request, silence, "Expired early.")
            self.message_user(request, "The silence has ended.", messages.SUCCESS)
        else:
            self.message_user(request, "The silence had already ended.", messages.WARNING)
        return back

    @admin.action(description="Expire the selected silences now", permissions=["expire"])
    def expire_selected(self, request: HttpRequest, queryset: QuerySet[Silence]) -> None:
        actor = Actor.from_user(request.user)
        expired = [s for s in queryset if silence_expire(silence=s, actor=actor)]
        for silence in expired:
            self.log_change(request, silence, "Expired early.")
        self.message_user(request, f"{len(expired)} silence(s) expired.", messages.SUCCESS)

    def has_expire_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("alerts.change_silence")


# ----- receivers --------------------------------------------------------------------------------


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
        data = super().clean() or {}
        kind = data.get("kind")
        if kind == ReceiverKind.EMAIL:
            addresses = [a.strip() for a in (data.get("addresses") or "").split(",") if a.strip()]
            if not addresses or any("@" not in a or " " in a for a in addresses):
                self.add_error("addresses", "One or more email addresses, comma-separated.")
        elif data.get("url"):
            parts = urlsplit(data["url"])
            if parts.scheme not in ("http", "https") or not parts.netloc:
                self.add_error("url", "An http(s) URL.")
        elif not (self.instance.pk and self.instance.url_encrypted):
            self.add_error("url", "This kind of receiver needs its URL.")
        return data


@admin.register(Receiver)
class ReceiverAdmin(admin.ModelAdmin):
    form = ReceiverForm
    list_display = ["name", "kind", "destination", "signed", "send_resolved", "enabled", "last_delivery"]
    list_filter = ["kind", "enabled"]
    actions = ["send_test"]

    def get_fields(self, request: HttpRequest, obj: Receiver | None = None) -> tuple[str, ...]:
        fields = ("name", "kind", "url", "secret", "addresses", "send_resolved", "enabled")
        return fields if obj is None else (*fields, "destination", "one_click")

    def get_readonly_fields(self, request: HttpRequest, obj: Receiver | None = None) -> list[str]:
        # The name is how commands find a receiver (alert_receiver_set, alert_test): fixed once made.
        return [] if obj is None else ["name", "destination", "one_click"]

    @admin.display(description="sends to")
    def destination(self, receiver: Receiver) -> str:
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
        return _post_button(
            reverse("admin:alerts_receiver_test", args=[receiver.pk]), "Send a test notification"
        )

    @method_decorator(sensitive_post_parameters("url", "secret"))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Receiver, form: forms.ModelForm, change: bool) -> None:
        data = form.cleaned_data
        try:
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
        except AlertsError as exc:
            raise forms.ValidationError(str(exc)) from exc
        obj.pk = saved.pk
        obj.__dict__.update(Receiver.objects.filter(pk=saved.pk).values().get())

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:receiver_id>/test/",
                self.admin_site.admin_view(self.test_view),
                name="alerts_receiver_test",
            ),
            *super().get_urls(),
        ]

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


# ----- routes -----------------------------------------------------------------------------------


class RouteForm(forms.ModelForm):
    matchers_text = forms.CharField(
        label="Matchers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: label=value, label!=value, label=~regex, label!~regex. Empty: every alert.",
    )
    group_by_text = forms.CharField(
        label="Group by",
        required=False,
        help_text="Label names, comma-separated (... for no grouping). Empty: inherit.",
    )

    class Meta:
        model = Route
        fields = [
            "parent",
            "position",
            "name",
            "receiver",
            "continue_matching",
            "group_wait_s",
            "group_interval_s",
            "repeat_interval_s",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["matchers_text"].initial = "\n".join(
                f"{m['name']}{m['op']}{m['value']}" for m in self.instance.matchers or []
            )
            self.fields["group_by_text"].initial = ", ".join(self.instance.group_by or [])

    def clean_matchers_text(self) -> list[dict[str, str]]:
        try:
            return [matcher_check(m) for m in _matchers_from_text(self.cleaned_data["matchers_text"])]
        except MatcherError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_group_by_text(self) -> list[str] | None:
        names = [name.strip() for name in self.cleaned_data["group_by_text"].split(",") if name.strip()]
        return names or None

    def clean_parent(self) -> Route | None:
        parent = self.cleaned_data.get("parent")
        node = parent
        while node is not None:
            if self.instance.pk and node.pk == self.instance.pk:
                raise forms.ValidationError("A route cannot sit under itself.")
            node = node.parent
        return parent

    def save(self, commit: bool = True) -> Route:
        self.instance.matchers = self.cleaned_data["matchers_text"]
        self.instance.group_by = self.cleaned_data["group_by_text"]
        return super().save(commit)


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    form = RouteForm
    list_display = ["tree_name", "matchers_display", "receiver", "continue_matching", "group_by", "timers"]
    fields = [
        "parent",
        "position",
        "name",
        "matchers_text",
        "receiver",
        "continue_matching",
        "group_by_text",
        "group_wait_s",
        "group_interval_s",
        "repeat_interval_s",
    ]

    def save_model(self, request: HttpRequest, obj: Route, form: forms.ModelForm, change: bool) -> None:
        route_save(route=obj, actor=Actor.from_user(request.user))

    def delete_model(self, request: HttpRequest, obj: Route) -> None:
        routes_delete(routes=[obj], actor=Actor.from_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Route]) -> None:
        routes_delete(routes=list(queryset), actor=Actor.from_user(request.user))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Route]:
        return super().get_queryset(request).select_related("receiver", "parent")

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # Show the tree in matching order: each route under its parent, indented by its depth.
        routes = list(changelist.result_list)
        children: dict[int | None, list[Route]] = {}
        for route in sorted(routes, key=lambda r: (r.position, r.pk)):
            children.setdefault(route.parent_id, []).append(route)
        ordered: list[Route] = []

        def walk(parent_id: int | None, depth: int) -> None:
            for route in children.get(parent_id, []):
                route.tree_depth = depth  # type: ignore[attr-defined]  # read by the changelist's indent
                ordered.append(route)
                walk(route.pk, depth + 1)

        walk(None, 0)
        ordered += [r for r in routes if r not in ordered]
        changelist.result_list = ordered
        return changelist

    @admin.display(description="route (matching order)")
    def tree_name(self, route: Route) -> str:
        return format_html(
            "{}{}", "\u2003" * getattr(route, "tree_depth", 0) + ("└ " if route.parent_id else ""), route.name
        )

    @admin.display(description="matchers")
    def matchers_display(self, route: Route) -> str:
        return matchers_text(route.matchers or []) or "(every alert)"

    @admin.display(description="timers (wait / interval / repeat)")
    def timers(self, route: Route) -> str:
        def show(value: int | None) -> str:
            return "inherit" if value is None else f"{value} s"

        return (
            f"{show(route.group_wait_s)} / {show(route.group_interval_s)} / {show(route.repeat_interval_s)}"
        )


# ----- the delivery log -------------------------------------------------------------------------


class DeliveryAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = DeliveryAttempt
    fields = readonly_fields = (
        "number", "started_at", "ok", "status_code", "latency_ms", "retry_after_s", "error")
    extra = 0


@admin.register(Notification)
class NotificationAdmin(ReadOnlyModelAdmin):
    list_display = [
        "id",
        "summary",
        "receiver",
        "status",
        "attempts",
        "created_at",
        "delivered_at",
        "latency",
    ]
    list_filter = ["status", "receiver", "is_test"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]
    fields = readonly_fields = (
        "summary",
        "receiver",
        "status",
        "is_test",
        "attempts",
        "condition_at",
        "created_at",
        "delivered_at",
        "next_attempt_at",
        "give_up_at",
        "message",
    )

    @admin.display(description="condition -> delivered")
    def latency(self, notification: Notification) -> str:
        if notification.delivered_at and notification.condition_at:
            return f"{(notification.delivered_at - notification.condition_at).total_seconds():.1f} s"
        return "-"


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyModelAdmin):
    list_display = fields = readonly_fields = (
        "started_at",
        "receiver",
        "notification",
        "number",
        "ok",
        "status_code",
        "latency_ms",
        "retry_after_s",
        "error",
    )
    list_filter = ["ok", "receiver"]
    date_hierarchy = "started_at"
