"""rotate_worker_secret, reencrypt_secrets and create_worker --enroll (docs/RUNBOOK.md, "Management commands")."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from workers_mgmt.crypto import decrypt_secret
from workers_mgmt.models import CredentialEvent, CredentialRotation, EnrollmentToken, WorkerCredential

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def worker_id(db):
    from tests.factories import make_worker

    worker, _ = make_worker(worker_id="cmd-1")
    return worker.pk


def test_push_rotation_prints_the_key_id_but_never_the_secret(worker_id):
    data = json.loads(run("rotate_worker_secret", worker_id, "--grace-hours", "2", "--json"))
    assert data == {"worker_id": worker_id, "key_id": data["key_id"], "mode": "push"}
    credential = WorkerCredential.objects.get(key_id=data["key_id"])
    assert credential.state == "pending"
    assert CredentialRotation.objects.get(credential=credential).grace_seconds == 7200
    created = CredentialEvent.objects.get(key_id=credential.key_id, kind="created")
    assert created.actor == "command:rotate_worker_secret"
    assert (created.staff_action.action, created.staff_action.source) == ("credential.rotate", "command")


def test_manual_rotation_prints_the_new_credential_once(worker_id):
    data = json.loads(run("rotate_worker_secret", worker_id, "--manual", "--json"))
    assert set(data) == {"worker_id", "key_id", "secret"}
    credential = WorkerCredential.objects.get(key_id=data["key_id"])
    assert credential.state == "pending" and credential.rotation.mode == "manual"
    assert decrypt_secret(credential.secret_encrypted) == data["secret"]


def test_emergency_rotation_revokes_everything_and_prints_a_current_key(worker_id):
    run("rotate_worker_secret", worker_id)
    data = json.loads(run("rotate_worker_secret", worker_id, "--emergency", "--json"))
    states = sorted(WorkerCredential.objects.filter(worker_id=worker_id).values_list("state", flat=True))
    assert states == ["current", "revoked", "revoked"]
    assert WorkerCredential.objects.get(key_id=data["key_id"]).state == "current"


def test_a_second_rotation_is_refused_with_a_one_line_error(worker_id):
    run("rotate_worker_secret", worker_id)
    with pytest.raises(CommandError, match="already has a pending key") as caught:
        run("rotate_worker_secret", worker_id)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("args", [
    ["nobody"], ["cmd-1", "--emergency", "--manual"], ["cmd-1", "--grace-hours", "-1"],
    ["cmd-1", "--emergency", "--grace-hours", "3"],
])
def test_bad_rotation_arguments_are_one_line_errors(worker_id, args):
    with pytest.raises(CommandError) as caught:
        run("rotate_worker_secret", *args)
    assert "\n" not in str(caught.value)


def test_create_worker_enroll_prints_a_token_and_no_secret():
    data = json.loads(run("create_worker", "enr-1", "--enroll", "--enroll-hours", "2", "--json"))
    assert set(data) == {"worker_id", "enrollment_token", "expires_at"}
    assert not WorkerCredential.objects.filter(worker_id="enr-1").exists()
    assert EnrollmentToken.objects.filter(worker_id="enr-1").count() == 1
    with pytest.raises(CommandError):
        run("create_worker", "enr-2", "--enroll-hours", "2")


def test_reencrypt_moves_every_secret_to_the_first_key(worker_id, settings):
    old_key = settings.LEADOPS_SECRETS_KEY.split(",")[0]
    credential = WorkerCredential.objects.get(worker_id=worker_id)
    secret = decrypt_secret(credential.secret_encrypted)
    new_key = Fernet.generate_key().decode()
    settings.LEADOPS_SECRETS_KEY = f"{new_key},{old_key}"

    assert json.loads(run("reencrypt_secrets", "--json")) == {"reencrypted": 1}
    assert json.loads(run("reencrypt_secrets", "--json")) == {"reencrypted": 0}

    token = WorkerCredential.objects.get(pk=credential.pk).secret_encrypted
    assert Fernet(new_key.encode()).decrypt(token.encode()).decode() == secret
    settings.LEADOPS_SECRETS_KEY = new_key  # the old key can now be dropped
    assert decrypt_secret(token) == secret
