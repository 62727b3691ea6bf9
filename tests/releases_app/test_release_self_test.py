"""Uploads are self-tested before any worker sees them: integrity, paths, links, manifest version."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from releases_app.models import Release, ReleaseAuditEvent, ReleaseState
from releases_app.services import ReleaseRefused, release_publish
from tests.releases_app.builders import tar_artifact, tar_member, zip_artifact


def test_good_tar_gz_becomes_ready_with_size_and_sha256(publish):
    data = tar_artifact("1.2.0")
    release = publish("1.2.0", data)
    assert release.state == ReleaseState.READY
    assert release.size == len(data)
    assert release.sha256 == hashlib.sha256(data).hexdigest()
    assert release.entrypoint == "bin/worker.js"
    assert release.node_version == "20.11.1"
    assert release.self_test_report["ok"] is True
    actions = list(ReleaseAuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["release_uploaded", "release_self_tested"]


def test_good_zip_becomes_ready(publish):
    release = publish("1.2.1", zip_artifact("1.2.1"), filename="w.zip")
    assert release.state == ReleaseState.READY
    assert release.archive_format == "zip"


def test_member_with_dot_dot_is_refused(publish):
    release = publish("1.3.0", tar_artifact("1.3.0", extra=[tar_member("../evil.sh")]))
    assert release.state == ReleaseState.FAILED
    assert any("'..'" in error for error in release.self_test_report["errors"])


def test_nested_dot_dot_and_absolute_members_are_refused(publish):
    release = publish("1.3.1", tar_artifact("1.3.1", extra=[tar_member("lib/../../x"), tar_member("/etc/x")]))
    assert release.state == ReleaseState.FAILED
    errors = " ".join(release.self_test_report["errors"])
    assert "'..'" in errors and "absolute path" in errors


def test_symlink_and_hardlink_escaping_the_folder_are_refused(publish):
    extra = [tar_member("lib/link", kind=tarfile.SYMTYPE, linkname="../../etc/passwd"),
             tar_member("hard", kind=tarfile.LNKTYPE, linkname="../outside")]
    release = publish("1.3.2", tar_artifact("1.3.2", extra=extra))
    assert release.state == ReleaseState.FAILED
    assert sum("outside" in error for error in release.self_test_report["errors"]) == 2


def test_symlink_inside_the_folder_is_fine(publish):
    extra = [tar_member("bin/current.js", kind=tarfile.SYMTYPE, linkname="worker.js")]
    assert publish("1.3.3", tar_artifact("1.3.3", extra=extra)).state == ReleaseState.READY


def test_zip_member_with_dot_dot_is_refused(publish):
    release = publish("1.3.4", zip_artifact("1.3.4", extra={"../evil": b"x"}), filename="w.zip")
    assert release.state == ReleaseState.FAILED


def test_manifest_naming_another_version_is_refused(publish):
    release = publish("2.0.0", tar_artifact("2.0.0", manifest_version="1.9.9"))
    assert release.state == ReleaseState.FAILED
    assert "names version '1.9.9'" in release.self_test_report["errors"][0]


def test_archive_without_manifest_is_refused(publish):
    release = publish("2.0.1", tar_artifact("2.0.1", include_manifest=False))
    assert release.state == ReleaseState.FAILED
    assert "worker-manifest.json" in release.self_test_report["errors"][0]


def test_truncated_archive_fails_integrity(publish):
    data = tar_artifact("2.0.2", padding=50_000)
    release = publish("2.0.2", data[: len(data) // 2])
    assert release.state == ReleaseState.FAILED
    assert "corrupt" in release.self_test_report["errors"][0]


def test_not_an_archive_is_refused(publish):
    assert publish("2.0.3", b"just text, not an archive").state == ReleaseState.FAILED


def test_upload_over_the_size_limit_is_refused_before_storage(db, settings):
    settings.LEADOPS_MAX_RELEASE_BYTES = 100
    with pytest.raises(ReleaseRefused, match="larger than"):
        release_publish(version="3.0.0", fileobj=io.BytesIO(tar_artifact("3.0.0")), filename="a.tar.gz",
                        actor="tests")
    assert not Release.objects.exists()


def test_unpacked_size_limit_stops_a_bomb(publish, settings):
    settings.LEADOPS_MAX_RELEASE_UNPACKED_BYTES = 10_000
    release = publish("3.0.1", tar_artifact("3.0.1", padding=20_000))
    assert release.state == ReleaseState.FAILED
    assert "unpacks to more than" in release.self_test_report["errors"][0]


def test_same_version_twice_is_refused(publish):
    publish("3.1.0")
    with pytest.raises(ReleaseRefused, match="already exists"):
        publish("3.1.0")


def test_invalid_version_is_refused(db):
    with pytest.raises(ReleaseRefused, match="invalid version"):
        release_publish(version="../1", fileobj=io.BytesIO(b"x"), filename="a.tar.gz", actor="tests")


def test_release_publish_command_prints_json_contract(db, tmp_path, capsys):
    artifact = tmp_path / "worker.tar.gz"
    artifact.write_bytes(tar_artifact("4.0.0"))
    call_command("release_publish", "--version", "4.0.0", "--file", str(artifact), "--notes", "first", "--json")
    answer = json.loads(capsys.readouterr().out)
    assert answer == {"version": "4.0.0", "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
                      "size": artifact.stat().st_size, "state": "ready"}
    assert Release.objects.get(version="4.0.0").notes == "first"


def test_release_publish_command_fails_on_a_bad_archive(db, tmp_path):
    artifact = tmp_path / "worker.tar.gz"
    artifact.write_bytes(tar_artifact("4.0.1", extra=[tar_member("../x")]))
    with pytest.raises(CommandError, match="self-test failed"):
        call_command("release_publish", "--version", "4.0.1", "--file", str(artifact))
    with pytest.raises(CommandError, match="No such file"):
        call_command("release_publish", "--version", "4.0.2", "--file", str(tmp_path / "missing"))
