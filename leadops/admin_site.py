"""The admin site in the operator's words (docs/RUNBOOK.md, "The admin"): branded, the Monitor first
on the index and in the navigation, sections named by what they hold and ordered by how often an
operator needs them, and the task queue's internals last, shown to superusers only.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.urls import reverse

from leadops import __version__

# Sections in the order an operator reaches for them; an app not named here comes after these.
SECTION_ORDER = ("queueing", "workers_mgmt", "ingestion", "alerts", "releases_app", "core", "leadops", "auth")
# django-q2's own tables: what the q cluster did, not what the product does.
INTERNAL_SECTIONS = {"django_q": "Background tasks (internal)"}
# Library sections renamed for operators (the project's own apps name themselves: AppConfig.verbose_name).
SECTION_NAMES = {**INTERNAL_SECTIONS, "auth": "Users and access"}


class LeadOpsAdminSite(AdminSite):
    site_header = f"LeadOps {__version__}"
    site_title = "LeadOps"
    index_title = "Operations"

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = [app for app in super().get_app_list(request, app_label)
                if app["app_label"] not in INTERNAL_SECTIONS or request.user.is_superuser]
        for app in apps:
            app["name"] = SECTION_NAMES.get(app["app_label"], app["name"])
        apps.sort(key=lambda app: (app["app_label"] in INTERNAL_SECTIONS, _section_rank(app["app_label"])))
        return apps

    # The Monitor is pages, not models: it heads what the index and the sidebar show, while
    # get_app_list keeps listing models only (code that walks the registered admins reads it).
    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        if self.has_permission(request):  # not on the login page
            context["available_apps"] = [monitor_section(), *context["available_apps"]]
        return context

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        app_list = [monitor_section(), *self.get_app_list(request)]
        return super().index(request, {"app_list": app_list, **(extra_context or {})})


def _section_rank(app_label: str) -> int:
    return SECTION_ORDER.index(app_label) if app_label in SECTION_ORDER else len(SECTION_ORDER)


def monitor_section() -> dict[str, Any]:
    """The Monitor pages as the first section of the index and of the navigation sidebar."""
    pages = (("Overview", "leadops-monitor"), ("Workers", "leadops-monitor-workers"),
             ("Readiness (Go/No-Go)", "leadops-readiness"))
    return {
        "name": "Monitor", "app_label": "monitor", "app_url": reverse("leadops-monitor"),
        "has_module_perms": True,
        "models": [{"name": name, "object_name": url_name.replace("-", "_"), "admin_url": reverse(url_name),
                    "add_url": None, "view_only": True, "perms": {"view": True}}
                   for name, url_name in pages],
    }
