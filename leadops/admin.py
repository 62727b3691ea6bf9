"""Admin of the project package: the retention policy of every data class (edits are audited), the
header naming the release."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.audit import Actor
from leadops import __version__
from leadops.models import RetentionPolicy
from leadops.services import retention_policy_set

# Every admin page names the release it runs (docs/CHANGELOG.md).
admin.site.site_header = f"LeadOps {__version__}"
admin.site.site_title = "LeadOps admin"


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ("data_class", "days", "updated_at")
    list_editable = ("days",)
    fields = ("data_class", "days")
    readonly_fields = ("data_class",)
    ordering = ("data_class",)

    # One row per class exists after migrate; classes are code, not data.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: RetentionPolicy, form: Any, change: bool) -> None:
        retention_policy_set(policy=obj, days=obj.days, actor=Actor.from_user(request.user))
