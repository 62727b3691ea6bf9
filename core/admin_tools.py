"""Admin helpers shared by the apps."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


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
