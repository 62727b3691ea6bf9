"""Release admin: upload with self-test, the rollout page and its buttons, pins, read-only trails."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from releases_app.models import Channel, Release, ReleaseAuditEvent, Rollout, RolloutState, WorkerPin
from tests.factories import only_action
from tests.releases_app.builders import tar_artifact, tar_member


@pytest.fixture
def rollout(fleet, stable_on, publish):
    from releases_app.services import rollout_start

    stable_on("1.0.0")
    workers = fleet(4)
    publish("1.1.0")
    started = rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"], actor="tests")
    # After the start: progress, like the gates, counts only installs made since the step reached
    # the worker.
    workers[0].report("1.1.0", "installed")
    return started


@pytest.mark.parametrize("name", ["release", "channel", "rollout", "workerpin", "workerreleasestatus",
                                  "releaseauditevent"])
def test_changelists_answer_staff(admin_client, rollout, name):
    assert admin_client.get(reverse(f"admin:releases_app_{name}_changelist")).status_code == 200


def test_non_staff_cannot_see_release_pages(client, db):
    user = get_user_model().objects.create_user("plain", password="pass-12345678")
    client.force_login(user)
    for url in (reverse("admin:releases_app_release_upload"), reverse("admin:releases_app_rollout_start")):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_upload_page_self_tests_and_refuses_a_bad_archive(admin_client, db):
    url = reverse("admin:releases_app_release_upload")
    assert admin_client.get(url).status_code == 200
    good = SimpleUploadedFile("w.tar.gz", tar_artifact("5.0.0"), content_type="application/gzip")
    response = admin_client.post(url, {"version": "5.0.0", "artifact": good, "notes": "n"})
    assert response.status_code == 302
    assert Release.objects.get(version="5.0.0").state == "ready"
    bad = SimpleUploadedFile("w.tar.gz", tar_artifact("5.0.1", extra=[tar_member("../x")]))
    admin_client.post(url, {"version": "5.0.1", "artifact": bad})
    release = Release.objects.get(version="5.0.1")
    assert release.state == "failed"
    page = admin_client.get(reverse("admin:releases_app_release_change", args=[release.pk]))
    assert b"&#x27;..&#x27; in path" in page.content or b"'..' in path" in page.content


def test_rollout_page_shows_steps_and_buttons(admin_client, rollout):
    page = admin_client.get(reverse("admin:releases_app_rollout_change", args=[rollout.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert 'id="rollout-steps"' in content and "canary w-01" in content
    assert 'data-verb="promote"' in content and 'data-verb="rollback"' in content
    assert page.context["progress"][0]["installed"] == 1


def test_rollout_buttons_call_the_services(admin_client, rollout):
    promote = reverse("admin:releases_app_rollout_operate", args=[rollout.pk, "promote"])
    assert admin_client.get(promote).status_code == 405  # POST only
    assert admin_client.post(promote).status_code == 302
    rollout.refresh_from_db()
    assert rollout.step_index == 1
    admin_client.post(reverse("admin:releases_app_rollout_operate", args=[rollout.pk, "rollback"]))
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert Channel.objects.get(name="stable").current.version == "1.0.0"
    actors = set(ReleaseAuditEvent.objects.filter(rollout_id_ref=rollout.pk).values_list("actor", flat=True))
    assert "admin" in actors
    rolled_back = ReleaseAuditEvent.objects.get(rollout_id_ref=rollout.pk, action="rolled_back")
    assert rolled_back.staff_action == only_action("channel.rollback")


def test_start_page_starts_a_rollout(admin_client, fleet, stable_on, publish):
    stable_on("1.0.0")
    fleet(2)
    release = publish("1.2.0")
    response = admin_client.post(reverse("admin:releases_app_rollout_start"),
                                 {"release": release.pk, "channel": "stable", "canary": "w-02", "steps": ""})
    assert response.status_code == 302
    assert Rollout.objects.get(release=release).targets.get().worker_id == "w-02"
    again = admin_client.post(reverse("admin:releases_app_rollout_start"),
                              {"release": release.pk, "channel": "stable", "steps": "[{"})
    assert again.status_code == 200 and "Not valid JSON" in again.content.decode()


def test_pin_in_admin_goes_through_the_service(admin_client, fleet, stable_on, publish):
    stable_on("1.0.0")
    (member,) = fleet(1)
    release = publish("0.9.0")
    response = admin_client.post(reverse("admin:releases_app_workerpin_add"),
                                 {"worker": member.worker_id, "release": release.pk, "reason": "debug"})
    assert response.status_code == 302
    assert WorkerPin.objects.get().release == release
    assert Channel.objects.get(name="stable").manifest["signed"]["pinned"][0]["version"] == "0.9.0"
    assert member.check()["reason"] == "pin"


def test_audit_and_status_admins_are_read_only(admin_client, rollout):
    row = ReleaseAuditEvent.objects.first()
    assert admin_client.get(reverse("admin:releases_app_releaseauditevent_add")).status_code == 403
    response = admin_client.post(reverse("admin:releases_app_releaseauditevent_change", args=[row.pk]),
                                 {"actor": "x"})
    assert response.status_code == 403
    assert admin_client.post(reverse("admin:releases_app_releaseauditevent_delete", args=[row.pk]),
                             {"post": "yes"}).status_code == 403


def test_monitor_page_shows_adoption_rollout_and_failed_installs(admin_client, rollout, fleet):
    from workers_mgmt.models import Worker

    Worker.objects.filter(pk="w-01").update(reported_version="1.1.0")
    Worker.objects.exclude(pk="w-01").update(reported_version="1.0.0")
    from releases_app.services import update_report_record

    update_report_record(worker=Worker.objects.get(pk="w-02"), version="1.1.0", stage="self_test", ok=False,
                         details={})
    page = admin_client.get(reverse("leadops-monitor")).content.decode()
    assert 'id="lo-releases"' in page
    assert '<span data-version="1.0.0">1.0.0: 3</span>' in page
    assert '<span data-version="1.1.0">1.1.0: 1</span>' in page
    assert f'data-rollout="{rollout.pk}"' in page and "canary w-01: 1/1 installed" in page
    assert "w-02 (1.1.0, self_test)" in page
