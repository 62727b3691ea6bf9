"""The staff-action audit in admin: read-only, filterable by actor, action and object."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString

from core.admin_fields import changes_fields, changes_text, labelled_fields
from core.admin_tools import ReadOnlyModelAdmin
from core.models import StaffAction


@admin.register(StaffAction)
class StaffActionAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "actor_name", "source", "action", "object_type", "object_count",
                    "changes_summary")
    list_filter = ("action", "object_type", "source", "actor_name")
    # Search "12" for every action that touched object 12, or a username.
    search_fields = ("object_ids", "actor_name")
    date_hierarchy = "created_at"
    list_select_related = ("actor",)
    show_full_result_count = False
    fields = ("created_at", "actor", "actor_name", "source", "action", "object_type", "object_ids",
              "object_count", "changes_display", "detail_display")
    readonly_fields = fields

    @admin.display(description="changes")
    def changes_summary(self, obj: StaffAction) -> str:
        return changes_text(obj.changes)

    @admin.display(description="changes")
    def changes_display(self, obj: StaffAction) -> SafeString:
        return changes_fields(obj.changes)

    @admin.display(description="detail")
    def detail_display(self, obj: StaffAction) -> SafeString:
        return labelled_fields(obj.detail)
