"""Admin of the project package: the retention policy of every data class (edits are audited), the
header naming the release, and the admins of the libraries (users, groups, the task queue) made to
write the one audit trail too.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django_q import admin as django_q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from core.admin_tools import AuditedAdminMixin, AuditedModelAdmin, admin_object_type
from core.audit import Actor, staff_action_record
from leadops.models import RetentionPolicy
from leadops.services import retention_policy_set


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedModelAdmin):
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


@admin.action(description="Resubmit selected tasks to queue")
def resubmit_tasks(model_admin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
    """django-q2's resubmit, audited: one StaffAction naming the tasks, in the transaction of the resubmit."""
    with transaction.atomic():
        staff_action_record(actor=Actor.from_user(request.user), action="task.resubmit",
                            object_type=admin_object_type(queryset.model),
                            object_ids=list(queryset.values_list("pk", flat=True)))
        django_q_admin.resubmit_task(model_admin, request, queryset)


def _audited_admins() -> None:
    """Register the libraries' admins again on the audited base (docs/SYSTEM_OVERVIEW.md)."""
    for model in (Group, User, Schedule, Success, Failure, OrmQ):
        if not admin.site.is_registered(model):
            continue  # django-q2 lists its ORM queue only when the queue is the database
        library_admin = type(admin.site.get_model_admin(model))
        attributes: dict[str, Any] = {"__module__": __name__}
        if django_q_admin.resubmit_task in (library_admin.actions or ()):
            attributes["actions"] = [resubmit_tasks]
        audited = type(f"Audited{library_admin.__name__}", (AuditedAdminMixin, library_admin), attributes)
        admin.site.unregister(model)
        admin.site.register(model, audited)


_audited_admins()
