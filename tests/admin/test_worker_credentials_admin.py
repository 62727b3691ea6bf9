"""The worker page's credential panel: rotate, revoke and enrollment buttons, and the audit trail."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tests.factories import make_worker, only_action
from workers_mgmt.crypto import decrypt_secret
from workers_mgmt.models import CredentialEvent, CredentialState, EnrollmentToken, WorkerCredential

pytestmark = pytest.mark.django_db


@pytest.fixture
def worker(db):
    worker, _ = make_worker(worker_id="w-panel")
    return worker


def url(name: str, worker_id: str, *rest: str) -> str:
    return reverse(f"admin:workers_mgmt_worker_{name}", args=[quote(worker_id), *rest])


def test_push_rotation_from_the_page_makes_a_pending_key_and_logs_the_change(admin_client, worker):
    response = admin_client.post(url("rotate", worker.pk), {"mode": "push", "grace_hours": "6"})
    assert response.status_code == 302 and response.url == url("change", worker.pk)
    pending = WorkerCredential.objects.get(worker=worker, state=CredentialState.PENDING)
    assert pending.rotation.grace_seconds == 6 * 3600
    row = only_action("credential.rotate")
    assert (row.object_ids, row.actor_name, row.detail["mode"]) == (worker.pk, "admin", "push")
    created = CredentialEvent.objects.get(key_id=pending.key_id, kind="created")
    assert (created.actor, created.staff_action) == ("admin", row)
    assert not LogEntry.objects.exists()
    page = admin_client.get(url("change", worker.pk)).content.decode()
    assert f'data-key-id="{pending.key_id}" data-state="pending"' in page
    assert 'title="A rotation is pending"' in page
    assert decrypt_secret(pending.secret_encrypted) not in page

    again = admin_client.post(url("rotate", worker.pk), {"mode": "push"}, follow=True)
    assert "already has a pending key" in again.content.decode()
    assert WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).count() == 1


def test_manual_and_emergency_rotation_show_the_new_secret_once(admin_client, worker):
    manual = admin_client.post(url("rotate", worker.pk), {"mode": "manual", "grace_hours": "1"})
    pending = WorkerCredential.objects.get(worker=worker, state=CredentialState.PENDING)
    assert decrypt_secret(pending.secret_encrypted) in manual.content.decode()
    assert manual["Cache-Control"].startswith("no-store")

    emergency = admin_client.post(url("rotate", worker.pk), {"mode": "emergency"})
    current = WorkerCredential.objects.get(worker=worker, state=CredentialState.CURRENT)
    assert decrypt_secret(current.secret_encrypted) in emergency.content.decode()
    assert WorkerCredential.objects.filter(worker=worker).exclude(pk=current.pk).values_list(
        "state", flat=True).distinct().get() == CredentialState.REVOKED
    assert decrypt_secret(current.secret_encrypted) not in admin_client.get(url("change", worker.pk)).content.decode()


def test_revoke_button_revokes_one_key_and_the_audit_trail_shows_it(admin_client, worker):
    key = WorkerCredential.objects.get(worker=worker)
    response = admin_client.post(url("revoke", worker.pk, key.key_id))
    assert response.status_code == 302
    assert WorkerCredential.objects.get(pk=key.pk).state == CredentialState.REVOKED
    page = admin_client.get(url("change", worker.pk)).content.decode()
    audit = page[page.index('id="credential-audit"'):]
    assert re.search(r'data-kind="revoked">.*?' + key.key_id, audit, re.S)
    row = only_action("credential.revoke")
    assert (row.object_ids, row.detail) == (worker.pk, {"key_id": key.key_id})
    assert CredentialEvent.objects.get(key_id=key.key_id, kind="revoked").staff_action == row


def test_enrollment_button_shows_a_token_once_and_stores_its_hash(admin_client, worker):
    response = admin_client.post(url("enroll", worker.pk))
    token = re.search(r'value="(enr_[^"]+)"', response.content.decode()).group(1)
    stored = EnrollmentToken.objects.get(worker=worker)
    assert token not in stored.token_hash
    assert admin_client.post("/api/v1/enroll", {"token": token}, content_type="application/json").status_code == 200


def test_a_get_only_asks_and_the_buttons_need_csrf_and_permission(admin_client, worker, client):
    # Rotate, emergency rotate and revoke open a confirmation page first: it changes nothing.
    keys_before = list(WorkerCredential.objects.filter(worker=worker).values_list("key_id", "state"))
    key_id = keys_before[0][0]
    page = admin_client.get(url("rotate", worker.pk), {"mode": "emergency"})
    assert page.status_code == 200 and b"Revoke every key of worker w-panel now" in page.content
    assert key_id.encode() in page.content and b'name="mode" value="emergency"' in page.content
    page = admin_client.get(url("rotate", worker.pk), {"mode": "push", "grace_hours": "6"})
    assert page.status_code == 200 and b"Start a push rotation of worker w-panel" in page.content
    assert b"6 hour(s) of grace" in page.content
    page = admin_client.get(url("revoke", worker.pk, key_id))
    assert page.status_code == 200 and f"Revoke key {key_id} (Current)".encode() in page.content
    assert admin_client.get(url("revoke", worker.pk, "k_x")).status_code == 404
    assert admin_client.get(url("enroll", worker.pk)).status_code == 405
    assert list(WorkerCredential.objects.filter(worker=worker).values_list("key_id", "state")) == keys_before
    assert not CredentialEvent.objects.exclude(kind="created").exists()

    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_worker"),
                               Permission.objects.get(codename="change_worker"))
    client.force_login(staff)
    assert client.get(url("rotate", worker.pk), {"mode": "emergency"}).status_code == 403
    assert client.post(url("rotate", worker.pk), {"mode": "push"}).status_code == 403
    assert client.post(url("enroll", worker.pk)).status_code == 403
    assert not WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).exists()

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(get_user_model().objects.get(username="admin"))
    assert csrf_client.post(url("rotate", worker.pk), {"mode": "push"}).status_code == 403
    assert not WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).exists()


def test_bulk_rotate_action_starts_one_push_rotation_per_worker(admin_client, worker):
    other, _ = make_worker(worker_id="w-panel-2")
    response = admin_client.post(reverse("admin:workers_mgmt_worker_changelist"), {
        "action": "rotate_secrets", "_selected_action": [worker.pk, other.pk]}, follow=True)
    assert response.status_code == 200
    assert WorkerCredential.objects.filter(state=CredentialState.PENDING).count() == 2


def test_credential_events_admin_is_read_only_with_filters(admin_client, worker):
    changelist = admin_client.get(reverse("admin:workers_mgmt_credentialevent_changelist") + "?kind=created")
    assert changelist.status_code == 200 and "w-panel" in changelist.content.decode()
    event = CredentialEvent.objects.get(worker_id="w-panel")
    change = reverse("admin:workers_mgmt_credentialevent_change", args=[event.pk])
    assert admin_client.post(change, {"reason": "edited"}).status_code == 403
    assert admin_client.get(reverse("admin:workers_mgmt_credentialevent_add")).status_code == 403
    assert admin_client.get(reverse("admin:workers_mgmt_credentialevent_delete", args=[event.pk])).status_code == 403
    assert admin_client.get(url("change", worker.pk)).status_code == 200


def test_the_panel_and_its_buttons_work_for_an_id_with_an_underscore(admin_client):
    worker, _ = make_worker(worker_id="w_under")
    page = admin_client.get(url("change", worker.pk)).content.decode()
    assert 'id="credentials-panel"' in page
    assert admin_client.post(url("rotate", worker.pk), {"mode": "push"}).status_code == 302
    assert WorkerCredential.objects.filter(worker=worker, state=CredentialState.PENDING).exists()


def test_an_emergency_rotation_is_one_staff_action_every_credential_event_points_to(admin_client, worker):
    admin_client.post(url("rotate", worker.pk), {"mode": "manual", "grace_hours": "1"})
    admin_client.post(url("rotate", worker.pk), {"mode": "emergency"})
    row = only_action("credential.rotate_emergency")
    events = CredentialEvent.objects.filter(staff_action=row)
    assert sorted(events.values_list("kind", flat=True)) == ["created", "revoked", "revoked"]
    assert set(events.values_list("actor", flat=True)) == {"admin"}
    # What the worker causes itself points to no staff change.
    assert not CredentialEvent.objects.filter(kind__in=["delivered", "verified", "promoted"],
                                              staff_action__isnull=False).exists()
