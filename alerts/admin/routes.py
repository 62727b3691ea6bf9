"""Admin of the route tree: matchers, receiver, grouping and timers; every change audited."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from alerts.admin.common import matchers_field, matchers_from_text
from alerts.matchers import MatcherError, matcher_check, matchers_text
from alerts.models import Route
from alerts.services import route_save, routes_delete
from core.admin_tools import AuditedModelAdmin
from core.audit import Actor


class RouteForm(forms.ModelForm):
    matchers_text = matchers_field(required=False, help_end=". Empty: every alert.")
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
            return [matcher_check(m) for m in matchers_from_text(self.cleaned_data["matchers_text"])]
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
class RouteAdmin(AuditedModelAdmin):
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
