"""Admin helpers shared by the apps, and the base every admin of the project derives from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db import router, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from core.admin_fields import labelled_fields
from core.audit import Actor, staff_action_record, staff_actions_collect, staff_actions_collected
from core.logging import mask_pii


def admin_object_type(model: type[Model]) -> str:
    """The `object_type` of a model in the staff-action audit: `<app_label>.<model_name>`."""
    return f"{model._meta.app_label}.{model._meta.model_name}"


class AuditedAdminMixin:
    """Django admin's own logging written to the one audit trail (`StaffAction`), never to LogEntry.

    An add or change through the admin's form or the list's editable columns writes one row
    (`admin.add`, `admin.change`, Django's change message in its detail) in the transaction of the
    save, unless the save went through a service that audited it already (docs/SYSTEM_OVERVIEW.md,
    "Staff actions"). Django logs a deletion before it deletes and outside the bulk delete's
    transaction, so here the delete itself is audited (`admin.delete`), in one transaction with it;
    an admin whose delete is a service overrides `delete_model` / `delete_queryset` with it.
    """

    model: type[Model]
    # Set on an admin whose rows are never deleted here: deletes (and the bulk "delete selected"
    # action) are refused, and the list page says what to do instead.
    deletion_note: str = ""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self.deletion_note:
            return False
        return super().has_delete_permission(request, obj)  # type: ignore[misc]

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with staff_actions_collect():
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
                        ) -> HttpResponse:
        if self.deletion_note:
            extra_context = {"subtitle": self.deletion_note, **(extra_context or {})}
        with staff_actions_collect():
            return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with staff_actions_collect():
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        """An object's history is its rows in the staff-action audit (Django's own log is not kept)."""
        query = urlencode({"object_type__exact": admin_object_type(self.model), "q": unquote(object_id)})
        return HttpResponseRedirect(f"{reverse('admin:core_staffaction_changelist')}?{query}")

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return self._log_save(request, obj, "admin.add", message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        return self._log_save(request, obj, "admin.change", message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        # Audited by delete_model / delete_queryset, in the delete's own transaction.
        return []

    def _log_save(self, request: HttpRequest, obj: Any, action: str, message: Any) -> Any:
        collected = staff_actions_collected()
        if collected:
            # The service the save went through wrote this change's row; that row stands for it.
            collected.clear()
            return None
        if action == "admin.change" and not message:
            return None  # Saved with nothing changed: there is no change to list.
        row = staff_action_record(actor=Actor.from_user(request.user), action=action,
                                  object_type=admin_object_type(type(obj)), object_ids=[obj.pk],
                                  detail={"message": message})
        if collected is not None:
            collected.clear()
        return row

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic(using=router.db_for_write(type(obj))):
            staff_action_record(actor=Actor.from_user(request.user), action="admin.delete",
                                object_type=admin_object_type(type(obj)), object_ids=[obj.pk])
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic(using=router.db_for_write(queryset.model)):
            ids = list(queryset.values_list("pk", flat=True))
            if ids:
                staff_action_record(actor=Actor.from_user(request.user), action="admin.delete",
                                    object_type=admin_object_type(queryset.model), object_ids=ids)
            super().delete_queryset(request, queryset)  # type: ignore[misc]


def admin_export_record(request: HttpRequest, queryset: QuerySet[Any], *, action: str,
                        export_format: str, extra: dict[str, Any] | None = None) -> int:
    """Audit an export from a list page before a row leaves: its filter, selection and row count.

    The filter is the list page's query string (a search term masked: it may be a phone number);
    returns the row count.
    """
    filters = {key: mask_pii(str(value)) if key == "q" else value for key, value in request.GET.items()
               if key not in ("o", "p")}
    count = queryset.count()
    staff_action_record(actor=Actor.from_user(request.user), action=action,
                        object_type=admin_object_type(queryset.model), object_count=count,
                        detail={"format": export_format, "filters": filters, "rows": count,
                                "all_matching": request.POST.get("select_across") == "1", **(extra or {})})
    return count


def field_display(field: str, *, description: str, render: Callable[[Any], str] = labelled_fields,
                  **display: Any) -> Callable[[Any, Any], str]:
    """An admin column or read-only field that shows one field of the object through `render`
    (a JSON value as labelled fields by default): `payload_display = field_display("payload",
    description="payload")` in the admin's class body; `display` goes to `admin.display` (ordering)."""

    def show(model_admin: Any, obj: Any) -> str:
        return render(getattr(obj, field))

    return admin.display(description=description, **display)(show)


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The base of every admin of the project: its changes are listed in the staff-action audit."""


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


class ReadOnlyModelAdmin(ReadOnlyMixin, AuditedModelAdmin):
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


# --- confirmations (Django admin's pattern: a page that names what will happen, then a POST) -----

CONFIRM_TEMPLATE = "admin/confirm_action.html"
# A confirmation page names at most this many of the rows it acts on, then "and N more".
CONFIRM_OBJECTS_SHOWN = 20


def confirmation_page(model_admin: admin.ModelAdmin[Any], request: HttpRequest, *, title: str, question: str,
                      confirm_label: str, consequences: Sequence[str] = (),
                      objects: Sequence[tuple[str, str]] = (), objects_more: int = 0,
                      hidden: Sequence[tuple[str, Any]] = (), form_action: str = "",
                      cancel_url: str = "", danger: bool = True) -> TemplateResponse:
    """The page that asks before a destructive action; it changes nothing. Its form POSTs `hidden`
    (with a CSRF token) to `form_action` (empty: the same URL, query string included)."""
    context = {
        **model_admin.admin_site.each_context(request), "title": title, "opts": model_admin.opts,
        "question": question, "consequences": list(consequences), "objects": list(objects),
        "objects_more": objects_more, "hidden": list(hidden), "form_action": form_action,
        "confirm_label": confirm_label, "cancel_url": cancel_url, "danger": danger,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


def action_confirmed(request: HttpRequest) -> bool:
    """A list action's second POST, from its confirmation page (Django's `post=yes`)."""
    return request.POST.get("post") == "yes"


def action_confirmation_page(model_admin: admin.ModelAdmin[Any], request: HttpRequest,
                             queryset: QuerySet[Any], *, title: str, question: str, confirm_label: str,
                             consequences: Sequence[str] = (), describe: Callable[[Any], str] = str
                             ) -> TemplateResponse:
    """The confirmation of a list action: names the selected rows, and POSTs the same selection
    again with `post=yes` to the list page (its filters kept in the query string)."""
    total = queryset.count()
    shown = list(queryset[:CONFIRM_OBJECTS_SHOWN])
    hidden: list[tuple[str, Any]] = [(helpers.ACTION_CHECKBOX_NAME, pk)
                                     for pk in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)]
    hidden += [(name, request.POST.get(name, default))
               for name, default in (("action", ""), ("select_across", "0"), ("index", "0"))]
    hidden.append(("post", "yes"))
    return confirmation_page(
        model_admin, request, title=title, question=question, confirm_label=confirm_label,
        consequences=consequences, objects=[(describe(obj), "") for obj in shown],
        objects_more=max(0, total - len(shown)), hidden=hidden)
