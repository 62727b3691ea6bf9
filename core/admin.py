"""The staff-action audit in admin: read-only, filterable by actor, action and object."""

from __future__ import annotations

from django.contrib import admin

from core.admin_fields import changes_fields, changes_text
from core.admin_tools import ReadOnlyModelAdmin, field_display
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

    changes_summary = field_display("changes", description="changes", render=changes_text)
    changes_display = field_display("changes", description="changes", render=changes_fields)
    detail_display = field_display("detail", description="detail")
