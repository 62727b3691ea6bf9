"""Admin helpers shared by the apps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path


class ReadOnlyMixin:
    """Refuse add, change and delete to everyone, superusers included: for admins and inlines of
    rows written by services only (audit trails, attempts, credentials).

    Actions that need a permission of their own (`has_<name>_permission`) still work.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyModelAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """An admin for rows written by services only: it shows, never edits."""


def value_list_filter(*, title: str, parameter_name: str, field: str,
                      values: Callable[[], Iterable[str]]) -> type[admin.SimpleListFilter]:
    """A list filter offering `values()` (asked at each page view) that keeps the rows whose `field`
    equals the chosen one: for columns with too many distinct values for Django's own filter."""

    class ValueListFilter(admin.SimpleListFilter):
        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [(value, value) for value in values()]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            return queryset.filter(**{field: self.value()}) if self.value() else queryset

    ValueListFilter.title = title
    ValueListFilter.parameter_name = parameter_name
    return ValueListFilter


def admin_url(model_admin: admin.ModelAdmin[Any], route: str, view: Callable[..., HttpResponse],
              name: str) -> URLPattern:
    """An extra admin page of `model_admin`, behind the admin's login and permission checks."""
    return path(route, model_admin.admin_site.admin_view(view), name=name)
