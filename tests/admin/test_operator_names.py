"""The admin reads in the operator's words (leadops/admin_site.py): branded, Monitor first on the
index and in the navigation, sections named by what they hold, the task queue's internals last and
for superusers only, alert rules by their names, never by their raw kinds."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from alerts.models import AlertRule
from alerts.services import evaluator_tick
from tests.alerts.factories import silent_workers

pytestmark = pytest.mark.django_db


def sections(html: str) -> list[str]:
    """The index's section captions, in order."""
    return re.findall(r'<caption>\s*<a href="[^"]*" class="section"[^>]*>([^<]+)</a>', html)


def test_the_index_names_sections_for_operators_with_monitor_first(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert sections(html) == ["Monitor", "Job queue", "Fleet", "Leads", "Alerts", "Releases", "Audit",
                              "Data retention", "Users and access", "Background tasks (internal)"]
    assert "Kernel" not in html
    assert f'href="{reverse("leadops-monitor")}"' in html
    assert "<title>Operations | LeadOps</title>" in html and "Operations</h1>" in html
    assert re.search(r'<div id="site-name"><a href="/admin/">LeadOps \d', html)


def test_the_navigation_sidebar_starts_with_the_monitor(admin_client):
    html = admin_client.get("/admin/queueing/job/").content.decode()
    sidebar = html[html.index('id="nav-sidebar"'):]
    assert sections(sidebar)[0] == "Monitor"
    assert sidebar.index("Readiness (Go/No-Go)") < sidebar.index("Job queue")


def test_background_tasks_are_out_of_the_way_of_staff_who_are_not_superusers(client):
    user = get_user_model().objects.create_user("ops", password="pw-123456789", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["queueing", "django_q"],
                                                         codename__startswith="view_"))
    client.force_login(user)
    assert sections(client.get("/admin/").content.decode()) == ["Monitor", "Job queue"]


def test_alert_rules_are_called_by_their_names(admin_client, clock, http_receiver):
    silent_workers(1, silent_for_s=61)
    evaluator_tick()
    rule = AlertRule.objects.get(kind="heartbeat_missing")
    rule_page = admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk])).content.decode()
    assert "<h2>Heartbeat missing</h2>" in rule_page
    alerts = admin_client.get(reverse("admin:alerts_alert_changelist")).content.decode()
    filters = alerts[alerts.index('id="changelist-filter"'):]
    assert "Circuit breaker open" in filters and "breaker_open" not in filters
    rows = alerts[alerts.index('id="result_list"'):alerts.index("</table>", alerts.index('id="result_list"'))]
    assert '<td class="field-alertname">Heartbeat missing</td>' in rows or ">Heartbeat missing<" in rows


def test_the_silence_form_shows_an_example_matcher(admin_client):
    html = admin_client.get(reverse("admin:alerts_silence_add")).content.decode()
    assert 'placeholder="alertname=breaker_open\nprovider=maps"' in html
    assert "For example alertname=breaker_open and provider=maps" in html
