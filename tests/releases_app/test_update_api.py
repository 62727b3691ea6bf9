"""The worker endpoints of releases: update check precedence, manifest, download with Range, reports."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone

from releases_app.models import Channel, WorkerReleaseStatus
from releases_app.services import release_revoke, rollout_start, worker_pin_clear, worker_pin_set
from tests.releases_app.builders import tar_artifact
from workers_mgmt.credential_cache import credentials_changed
from workers_mgmt.models import Worker


def test_pin_beats_canary_and_is_named_in_the_manifest(db, fleet, stable_on, publish):
    stable_on("1.0.0")
    (member, other) = fleet(2)
    publish("0.9.0")
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=[member.worker_id], actor="tests")
    assert member.check()["reason"] == "canary"
    worker_pin_set(worker=Worker.objects.get(pk=member.worker_id), version="0.9.0", reason="hold", actor="staff")
    answer = member.check()
    assert (answer["reason"], answer["target"]["version"]) == ("pin", "0.9.0")
    assert [entry["version"] for entry in answer["manifest"]["signed"]["pinned"]] == ["0.9.0"]
    assert other.check()["reason"] == "current"
    worker_pin_clear(worker=Worker.objects.get(pk=member.worker_id), actor="staff")
    assert member.check()["reason"] == "canary"


def test_expired_pin_is_ignored(clock, fleet, stable_on, publish):
    stable_on("1.0.0")
    (member,) = fleet(1)
    publish("0.9.0")
    worker_pin_set(worker=Worker.objects.get(pk=member.worker_id), version="0.9.0", actor="staff",
                   expires_at=timezone.now() + dt.timedelta(hours=1))
    assert member.check()["reason"] == "pin"
    clock.shift(dt.timedelta(hours=2))
    assert member.check()["reason"] == "current"


def test_channel_without_release_answers_no_target(db, fleet):
    (member,) = fleet(1)
    answer = member.check()
    assert answer["target"] is None and answer["reason"] == "channel"
    assert answer["manifest"]["signed"]["release"] is None


def test_manifest_endpoint_and_unknown_channel(db, fleet, stable_on):
    stable_on("1.0.0")
    (member,) = fleet(1)
    response = member.signed.get("/api/v1/releases/stable/latest.json")
    assert response.status_code == 200
    assert response.json()["signed"]["channel"] == "stable"
    assert response["Cache-Control"] == "no-store"
    missing = member.signed.get("/api/v1/releases/nope/latest.json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_unsigned_calls_get_the_generic_401(client, db):
    for path in ("/api/v1/updates/check", "/api/v1/releases/stable/latest.json", "/api/v1/releases/1/download"):
        response = client.get(path)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_download_whole_and_ranges(db, fleet, publish):
    data = tar_artifact("1.0.0", padding=4000)
    publish("1.0.0", data)
    (member,) = fleet(1)
    path = "/api/v1/releases/1.0.0/download"
    whole = member.signed.get(path)
    assert whole.status_code == 200 and _body(whole) == data
    assert whole["Accept-Ranges"] == "bytes" and whole["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = member.signed.get(path, headers={"Range": "bytes=100-"})
    assert part.status_code == 206 and _body(part) == data[100:]
    assert part["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    middle = member.signed.get(path, headers={"Range": "bytes=10-19"})
    assert _body(middle) == data[10:20] and middle["Content-Length"] == "10"
    suffix = member.signed.get(path, headers={"Range": "bytes=-7"})
    assert _body(suffix) == data[-7:]
    beyond = member.signed.get(path, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.json()["error"]["code"] == "range_not_satisfiable"
    assert beyond["Content-Range"] == f"bytes */{len(data)}"
    stale = member.signed.get(path, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert stale.status_code == 200 and _body(stale) == data
    several = member.signed.get(path, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200


def test_download_of_unknown_failed_or_revoked_release_is_404(db, fleet, publish):
    (member,) = fleet(1)
    publish("1.0.0")
    publish("1.0.1", tar_artifact("1.0.1", manifest_version="9"))
    from releases_app.models import Release

    release_revoke(release=Release.objects.get(version="1.0.0"), actor="staff")
    for version in ("1.0.0", "1.0.1", "7.7.7"):
        response = member.signed.get(f"/api/v1/releases/{version}/download")
        assert response.status_code == 404, version


def test_update_report_is_stored_per_worker_and_version(db, fleet):
    (member,) = fleet(1)
    member.report("1.1.0", "downloaded")
    member.report("1.1.0", "installed")
    member.report("1.1.0", "self_test", ok=False, details={"error": "chromium"})
    status = WorkerReleaseStatus.objects.get(worker_id=member.worker_id, version="1.1.0")
    assert status.install_ok is True and status.self_test_ok is False and status.failed
    assert status.last_details == {"error": "chromium"}


@pytest.mark.parametrize("body", [
    {"version": "1.0.0", "stage": "exploded", "ok": True},
    {"version": "1.0.0", "stage": "installed", "ok": "yes"},
    {"stage": "installed", "ok": True},
    {"version": "1.0.0", "stage": "installed", "ok": True, "details": "text"},
])
def test_bad_update_reports_get_422(db, fleet, body):
    (member,) = fleet(1)
    response = member.signed.post("/api/v1/updates/report", body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_malformed_report_body_is_400_not_500(db, fleet):
    (member,) = fleet(1)
    response = member.signed.post("/api/v1/updates/report", raw=b"{not json")
    assert response.status_code == 400


def test_update_check_query_count_is_bounded(db, fleet, stable_on, publish, django_assert_max_num_queries):
    stable_on("1.0.0")
    workers = fleet(3)
    publish("1.1.0")
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"], actor="tests")
    workers[0].check()  # warm the channel's manifest
    # Authentication (5: failure budget, key, nonce, rate limit, key last use) + channel with its
    # releases, pin, rollout, this worker's target; + 2 for the worker's first request of all: its
    # liveness UPDATE and online event (docs/API.md, "Liveness").
    with django_assert_max_num_queries(11):
        workers[1].check()


def test_expired_manifest_is_signed_again_on_the_next_check(clock, fleet, stable_on):
    stable_on("1.0.0")
    (member,) = fleet(1)
    first = member.check()["manifest"]["signed"]["sequence"]
    Channel.objects.filter(name="stable").update(manifest_expires_at=timezone.now() - dt.timedelta(seconds=1))
    again = member.check()["manifest"]["signed"]
    assert again["sequence"] == first + 1


def test_worker_on_an_impossible_channel_name_gets_no_target_not_a_500(db, fleet):
    (member,) = fleet(1)
    # Written past the form's validation (an old row, a raw import); moving it bumps the credential
    # generation as every change of a worker does, so the next request reads the row.
    Worker.objects.filter(pk=member.worker_id).update(channel="Not A Channel!")
    credentials_changed(worker_ids=[member.worker_id])
    assert member.check() == {"target": None, "reason": "channel", "manifest": None}


def test_garbage_range_headers_never_500(db, fleet, publish):
    publish("1.0.0")
    (member,) = fleet(1)
    for value in ("bytes=abc", "items=0-1", "bytes=-", "bytes=99999999999999999999-", "bytes=5-2", "bytes=-0"):
        response = member.signed.get("/api/v1/releases/1.0.0/download", headers={"Range": value})
        assert response.status_code in (200, 206, 416), value


def test_pinned_workers_are_not_reached_by_rollout_steps(db, fleet, stable_on, publish):
    stable_on("1.0.0")
    workers = fleet(4)
    publish("0.9.0")
    publish("1.1.0")
    worker_pin_set(worker=Worker.objects.get(pk="w-02"), version="0.9.0", actor="staff")
    rollout = rollout_start(version="1.1.0", channel_name="stable", steps=[{"percent": 100}], actor="tests")
    assert set(rollout.targets.values_list("worker_id", flat=True)) == {"w-01", "w-03", "w-04"}
    assert workers[1].check()["reason"] == "pin"


def test_heartbeat_self_test_is_stored_and_kept_until_the_next_one(db, fleet):
    (member,) = fleet(1)
    member.heartbeat(self_test={"ok": False, "version": "1.1.0", "error": "chromium did not start"})
    assert Worker.objects.get(pk=member.worker_id).last_self_test["error"] == "chromium did not start"
    member.heartbeat()  # a heartbeat without a self-test does not erase the last one
    assert Worker.objects.get(pk=member.worker_id).last_self_test["ok"] is False
    member.heartbeat(self_test={"ok": True, "version": "1.1.0"})
    assert Worker.objects.get(pk=member.worker_id).last_self_test == {"ok": True, "version": "1.1.0"}
