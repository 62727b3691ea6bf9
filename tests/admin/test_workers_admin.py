"""Fleet admin: a worker's secret is shown once and stored only encrypted; keys are issued by services."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.factories import only_action
from tests.signing import SignedClient
from workers_mgmt.crypto import decrypt_secret
from workers_mgmt.models import CredentialEvent, CredentialState, Worker, WorkerConfig, WorkerCredential

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:workers_mgmt_worker_add")
SECRET_INPUT = re.compile(r'<input id="secret-\d+"[^>]*value="([^"]+)"')


def add_worker(client: Client, worker_id: str = "w-new", **fields):
    data = {"id": worker_id, "name": "New worker", "channel": "beta", "rate_limit_per_min": 90, "notes": "",
            **fields}
    return client.post(ADD_URL, data)


def current_secret(worker_id: str) -> tuple[str, str]:
    credential = WorkerCredential.objects.get(worker_id=worker_id, state=CredentialState.CURRENT)
    return credential.key_id, decrypt_secret(credential.secret_encrypted)


def every_stored_text() -> str:
    """Every value of every table, as text: what anyone reading the database could see."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_adding_a_worker_shows_its_secret_once(admin_client):
    response = add_worker(admin_client)

    assert response.status_code == 200
    worker = Worker.objects.get(pk="w-new")
    assert (worker.name, worker.channel, worker.rate_limit_per_min, worker.enabled) == (
        "New worker", "beta", 90, True)
    key_id, secret = current_secret("w-new")
    page = response.content.decode()
    assert SECRET_INPUT.findall(page) == [secret]
    assert key_id in page
    assert "no-store" in response["Cache-Control"]

    for url in [reverse("admin:workers_mgmt_worker_change", args=[quote("w-new")]),
                reverse("admin:workers_mgmt_worker_changelist"),
                reverse("admin:workers_mgmt_workercredential_changelist"),
                reverse("admin:workers_mgmt_workercredential_change", args=[quote(key_id)]),
                reverse("admin:index")]:
        again = admin_client.get(url)
        assert again.status_code == 200, url
        assert secret not in again.content.decode(), url


def test_a_worker_id_with_an_underscore_links_to_its_own_page(admin_client):
    # The admin escapes "_" in object ids ("_25" would read back as "%"), so links must be quoted.
    response = add_worker(admin_client, worker_id="w_25")
    link = reverse("admin:workers_mgmt_worker_change", args=[quote("w_25")])
    assert link in response.content.decode()
    page = admin_client.get(link)
    assert page.status_code == 200 and page.context["original"].pk == "w_25"


def test_the_database_holds_no_plain_secret_after_an_admin_add(admin_client):
    response = add_worker(admin_client)
    (secret,) = SECRET_INPUT.findall(response.content.decode())

    stored = every_stored_text()
    assert secret not in stored
    assert WorkerCredential.objects.filter(worker_id="w-new").count() == 1
    row = only_action("worker.create")
    assert row.object_ids == "w-new"
    assert CredentialEvent.objects.get(worker_id="w-new", kind="created").staff_action == row
    assert not LogEntry.objects.exists()


def test_the_shown_secret_signs_requests(admin_client, client):
    response = add_worker(admin_client)
    (secret,) = SECRET_INPUT.findall(response.content.decode())
    key_id, _ = current_secret("w-new")

    signed = SignedClient(client, worker_id="w-new", key_id=key_id, secret=secret)
    heartbeat = signed.request("POST", "/api/v1/heartbeat", {"version": "1", "status": "ok", "running_jobs": 0})
    assert heartbeat.status_code == 200, heartbeat.content


def test_adding_a_worker_with_a_taken_or_bad_id_shows_the_form_again(admin_client, rows):
    taken = add_worker(admin_client, worker_id="w-admin")
    bad = add_worker(admin_client, worker_id="Not A Slug!")

    assert taken.status_code == bad.status_code == 200
    assert taken.context["adminform"].form.errors and bad.context["adminform"].form.errors
    assert not SECRET_INPUT.findall(taken.content.decode() + bad.content.decode())
    assert WorkerCredential.objects.filter(worker_id="w-admin").count() == 1


def test_issue_new_key_asks_first_then_shows_the_new_secret_once(admin_client, rows):
    url = reverse("admin:workers_mgmt_workercredential_changelist")
    selected = {"action": "issue_new_key", "_selected_action": [rows.credential.pk]}

    confirm = admin_client.post(url, selected)
    assert confirm.status_code == 200
    assert "Yes, issue new keys" in confirm.content.decode()
    assert WorkerCredential.objects.get(pk=rows.credential.pk).state == CredentialState.CURRENT

    done = admin_client.post(url, {**selected, "post": "yes"})
    assert done.status_code == 200
    assert WorkerCredential.objects.get(pk=rows.credential.pk).state == CredentialState.REVOKED
    key_id, secret = current_secret("w-admin")
    assert key_id != rows.credential.pk
    assert SECRET_INPUT.findall(done.content.decode()) == [secret]
    assert secret not in every_stored_text()
    assert secret not in admin_client.get(reverse("admin:workers_mgmt_worker_change", args=[quote("w-admin")])
                                          ).content.decode()


def test_issue_new_key_from_the_worker_list_gives_each_worker_one_key(admin_client, rows):
    done = admin_client.post(reverse("admin:workers_mgmt_worker_changelist"), {
        "action": "issue_new_key", "_selected_action": ["w-admin", "w-silent"], "post": "yes"})

    shown = SECRET_INPUT.findall(done.content.decode())
    assert sorted(shown) == sorted([current_secret("w-admin")[1], current_secret("w-silent")[1]])
    assert WorkerCredential.objects.filter(state=CredentialState.CURRENT).count() == 2


def test_credentials_admin_offers_no_add_change_or_delete(admin_client, rows):
    change_url = reverse("admin:workers_mgmt_workercredential_change", args=[quote(rows.credential.pk)])
    assert admin_client.get(reverse("admin:workers_mgmt_workercredential_add")).status_code == 403
    assert admin_client.post(change_url, {"state": "revoked"}).status_code == 403
    assert admin_client.get(reverse("admin:workers_mgmt_workercredential_delete",
                                    args=[quote(rows.credential.pk)])).status_code == 403
    assert "secret" not in admin_client.get(change_url).context["adminform"].form.fields


def test_issue_action_needs_the_add_credential_permission(client, rows):
    staff = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_workercredential", "view_worker", "change_worker"]))
    client.force_login(staff)

    assert client.get(reverse("admin:workers_mgmt_workercredential_changelist")).context["action_form"] is None
    worker_actions = client.get(reverse("admin:workers_mgmt_worker_changelist")).context["action_form"]
    assert "issue_new_key" not in dict(worker_actions.fields["action"].choices)
    client.post(reverse("admin:workers_mgmt_workercredential_changelist"), {
        "action": "issue_new_key", "_selected_action": [rows.credential.pk], "post": "yes"})
    assert WorkerCredential.objects.get(pk=rows.credential.pk).state == CredentialState.CURRENT


def test_disable_and_enable_actions(admin_client, rows):
    url = reverse("admin:workers_mgmt_worker_changelist")

    admin_client.post(url, {"action": "disable_workers", "_selected_action": ["w-admin", "w-silent"]})
    assert not Worker.objects.filter(enabled=True).exists()
    response = admin_client.post(url, {"action": "enable_workers", "_selected_action": ["w-admin"]},
                                 follow=True)
    assert set(Worker.objects.filter(enabled=True).values_list("pk", flat=True)) == {"w-admin"}
    assert "1 worker(s) enabled." in response.content.decode()


def test_heartbeat_badge_says_how_long_ago(admin_client, rows):
    page = admin_client.get(reverse("admin:workers_mgmt_worker_changelist")).content.decode()
    assert re.search(r"\d+ s ago", page)
    assert ">never<" in page


def test_credential_panel_lists_keys_but_hides_the_secret(admin_client, rows):
    response = admin_client.get(reverse("admin:workers_mgmt_worker_change", args=[quote("w-admin")]))
    assert response.context["inline_admin_formsets"] == []  # the panel shows the keys, read-only
    page = response.content.decode()
    assert f'data-key-id="{rows.credential.pk}" data-state="current"' in page
    assert rows.credential.secret_encrypted not in page
    assert decrypt_secret(rows.credential.secret_encrypted) not in page


# The tuning fields (long poll, payload limits), at their defaults.
TUNING = {"long_poll_wait_s": 0, "max_leads_per_report": 1000, "max_body_bytes": 5 * 1024 * 1024}


def test_worker_config_save_bumps_the_version(admin_client, rows):
    url = reverse("admin:workers_mgmt_workerconfig_change", args=[rows.config.pk])
    before = WorkerConfig.objects.get().version

    response = admin_client.post(url, {"poll_interval_s": 7, "heartbeat_interval_s": 30, "max_batch": 20,
                                       "report_chunk_leads": 200, "update_check_interval_s": 3600,
                                       "extra": "{}", **TUNING})
    assert response.status_code == 302
    config = WorkerConfig.objects.get()
    assert (config.poll_interval_s, config.max_batch, config.version) == (7, 20, before + 1)


def test_worker_config_cannot_be_added_twice_or_deleted(admin_client, rows):
    assert admin_client.get(reverse("admin:workers_mgmt_workerconfig_add")).status_code == 403
    assert admin_client.get(reverse("admin:workers_mgmt_workerconfig_delete",
                                    args=[rows.config.pk])).status_code == 403


def test_worker_config_is_added_as_the_single_row_when_missing(admin_client, db):
    WorkerConfig.objects.all().delete()  # a migration creates it; an operator may have removed it
    assert admin_client.get(reverse("admin:workers_mgmt_workerconfig_changelist")).url == reverse(
        "admin:workers_mgmt_workerconfig_add")
    response = admin_client.post(reverse("admin:workers_mgmt_workerconfig_add"), {
        "poll_interval_s": 5, "heartbeat_interval_s": 30, "max_batch": 10, "report_chunk_leads": 200,
        "update_check_interval_s": 3600, "extra": "{}", **TUNING})
    assert response.status_code == 302
    assert WorkerConfig.objects.get().pk == 1


def test_editing_a_worker_keeps_what_its_heartbeat_wrote(admin_client, rows):
    url = reverse("admin:workers_mgmt_worker_change", args=[quote("w-admin")])
    admin_client.get(url)
    Worker.objects.filter(pk="w-admin").update(reported_version="9.9.9")  # a heartbeat meanwhile

    response = admin_client.post(url, {"name": "Renamed", "enabled": "on", "channel": "stable",
                                       "rate_limit_per_min": 120, "notes": "",
                                       "credentials-TOTAL_FORMS": 0, "credentials-INITIAL_FORMS": 0})
    assert response.status_code == 302, response.context["adminform"].form.errors
    worker = Worker.objects.get(pk="w-admin")
    assert (worker.name, worker.rate_limit_per_min, worker.reported_version) == ("Renamed", 120, "9.9.9")
