"""Failure clusters by fingerprint x release x provider, "began with release X", and the one remedy."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from core.models import StaffAction
from leadops.failures import failure_clusters, failure_message_normalize
from queueing.models import Job, JobState
from releases_app.models import Channel, RolloutState
from releases_app.services import rollout_start
from tests.factories import make_jobs
from tests.releases_app.conftest import _media_in_tmp, fleet, publish, stable_on  # noqa: F401

HOLD_S = 1800


def fail(member, count: int, *, message: str, code: str = "timeout") -> list[int]:
    """The worker pulls `count` jobs and reports each failed for good (they go to the DLQ)."""
    jobs = member.signed.pull(count).json()["jobs"]
    assert len(jobs) == count
    for index, job in enumerate(jobs):
        if index == count - 1:  # the newest failure kept a screenshot
            assert member.signed.evidence(job["id"], job["attempt_id"], _png()).status_code == 200
        body = {"attempt_id": job["attempt_id"], "outcome": "failed", "leads": [],
                "log_tail": f"loading page {index}\nwaited {1000 + index} ms\ngave up",
                "error": {"code": code, "message": message.format(n=index), "retryable": False}}
        assert member.signed.report(job["id"], body).status_code == 200, job
    return [job["id"] for job in jobs]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def succeed(member, count: int) -> None:
    for job in member.signed.pull(count).json()["jobs"]:
        body = {"attempt_id": job["attempt_id"], "outcome": "succeeded", "leads": []}
        assert member.signed.report(job["id"], body).status_code == 200


def test_normalized_message_drops_digits_ids_urls_and_quoted_values():
    one = failure_message_normalize('Timeout 3021 ms at https://maps.example/p/123?q=a for "Cafe Riyadh" '
                                    "job 5b2f0c1e-3c1d-4a55-9f00-aa11bb22cc33 req 9f8e7d6c5b4a")
    two = failure_message_normalize("timeout 15 ms at http://maps.example/x for 'Bakery' "
                                    "job 00000000-1111-2222-3333-444444444444 req 0a1b2c3d4e5f")
    assert one == two == "timeout <n> ms at <url> for <value> job <id> req <id>"


@pytest.fixture
def canary_failing(clock, fleet, stable_on, publish):  # noqa: F811
    """stable on 1.0.0 with three workers; 1.1.0 rolled out to canary w-01, whose jobs then fail."""
    stable_on("1.0.0")
    workers = fleet(3)
    make_jobs(12)
    succeed(workers[1], 4)              # the channel's release keeps working, before and after
    publish("1.1.0")
    clock.shift(dt.timedelta(minutes=5))
    rollout = rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                            steps=[{"canary": ["w-01"], "hold_s": HOLD_S}, {"percent": 100}], actor="tests")
    assert workers[0].update()["reason"] == "canary"
    clock.shift(dt.timedelta(minutes=3))
    dead = fail(workers[0], 4, message="Timeout after {n}021 ms loading https://maps.example/p/{n}?q=x")
    succeed(workers[2], 4)
    return workers, rollout, dead


def test_failures_only_on_the_canary_release_form_one_cluster_that_began_with_it(canary_failing):
    _, _, dead = canary_failing
    clusters = failure_clusters()
    assert len(clusters) == 1
    cluster = clusters[0]
    assert (cluster.code, cluster.release, cluster.provider, cluster.count) == ("timeout", "1.1.0", "maps", 4)
    assert cluster.message == "timeout after <n> ms loading <url>"
    assert sorted(cluster.dead_job_ids) == sorted(dead)
    assert cluster.workers == {"w-01"}
    assert cluster.began_with is not None
    assert (cluster.began_with.release, cluster.began_with.channel) == ("1.1.0", "stable")
    assert cluster.first_seen <= cluster.last_seen
    assert "gave up" in cluster.sample_log_tail
    assert cluster.sample_evidence_id is not None


def test_a_failure_seen_before_the_rollout_is_not_blamed_on_it(clock, fleet, stable_on, publish):  # noqa: F811
    stable_on("1.0.0")
    workers = fleet(2)
    make_jobs(6)
    fail(workers[1], 2, message="Timeout after {n}00 ms loading https://maps.example/")  # on 1.0.0
    publish("1.1.0")
    clock.shift(dt.timedelta(minutes=5))
    rollout_start(version="1.1.0", channel_name="stable", canary=["w-01"],
                  steps=[{"canary": ["w-01"], "hold_s": HOLD_S}, {"percent": 100}], actor="tests")
    workers[0].update()
    clock.shift(dt.timedelta(minutes=1))
    fail(workers[0], 2, message="Timeout after {n}5 ms loading https://maps.example/b")
    by_release = {cluster.release: cluster for cluster in failure_clusters()}
    assert set(by_release) == {"1.0.0", "1.1.0"}
    assert by_release["1.1.0"].began_with is None  # the same failure was there before the step


def _remedy_url(key: str) -> str:
    return reverse("leadops-cluster-remedy", args=[key])


def test_the_one_remedy_rolls_back_and_requeues_with_one_audit_entry_each(canary_failing, admin_user):
    _, rollout, dead = canary_failing
    cluster = failure_clusters()[0]
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    page = browser.get(_remedy_url(cluster.key))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Roll channel <strong>stable</strong> back from 1.1.0 to <strong>1.0.0</strong>" in text
    assert "Requeue the cluster's <strong>4</strong> dead jobs" in text
    assert "Began with release 1.1.0 on channel stable" in text
    assert not StaffAction.objects.filter(actor_name="admin").exists()  # the GET changes nothing

    # Without the CSRF token nothing happens.
    assert browser.post(_remedy_url(cluster.key), {"rollback": "on", "requeue": "on"}).status_code == 403
    assert Channel.objects.get(name="stable").current.version == "1.1.0"

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)
    answer = browser.post(_remedy_url(cluster.key),
                          {"csrfmiddlewaretoken": token, "rollback": "on", "requeue": "on"})
    assert answer.status_code == 302 and answer["Location"] == reverse("leadops-failure-clusters")

    channel = Channel.objects.get(name="stable")
    assert channel.current.version == "1.0.0"
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.ROLLED_BACK
    assert set(Job.objects.filter(pk__in=dead).values_list("state", flat=True)) == {JobState.QUEUED}
    mine = StaffAction.objects.filter(actor_name="admin").order_by("pk")
    assert [row.action for row in mine] == ["channel.rollback", "dlq.requeue"]
    assert sorted(int(pk) for pk in mine[1].object_ids.split()) == sorted(dead)
    assert "failure cluster" in Channel.objects.get(name="stable").rollouts.get(pk=rollout.pk).state_reason

    # The same confirm sent twice (a double click) finds nothing left to do and writes nothing.
    again = browser.post(_remedy_url(cluster.key),
                         {"csrfmiddlewaretoken": token, "rollback": "on", "requeue": "on"})
    assert again.status_code == 302
    assert StaffAction.objects.filter(actor_name="admin").count() == 2
    assert Channel.objects.get(name="stable").current.version == "1.0.0"


def test_silencing_the_derived_alert_is_its_own_audit_entry(canary_failing, admin_user):
    from alerts.models import Silence

    cluster = failure_clusters()[0]
    browser = Client()
    browser.force_login(admin_user)
    assert browser.post(_remedy_url(cluster.key), {"silence": "on"}).status_code == 302
    silence = Silence.objects.get()
    assert {"name": "provider", "op": "=", "value": "maps"} in silence.matchers
    assert list(StaffAction.objects.filter(actor_name="admin").values_list("action", flat=True)) == [
        "alert_silence.create"]
    assert Channel.objects.get(name="stable").current.version == "1.1.0"  # not chosen, not done


def test_cluster_pages_are_staff_only(canary_failing, client, django_user_model):
    key = failure_clusters()[0].key
    for url in (reverse("leadops-failure-clusters"), _remedy_url(key)):
        assert client.get(url).status_code == 302  # to the admin login
    staff = django_user_model.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("leadops-failure-clusters")).status_code == 403  # no view_jobattempt


def test_cluster_page_lists_the_cluster(canary_failing, admin_client):
    page = admin_client.get(reverse("leadops-failure-clusters")).content.decode()
    assert "began with release 1.1.0 on channel stable" in page
    assert "timeout after &lt;n&gt; ms loading &lt;url&gt;" in page
    assert "newest screenshot" in page


def test_each_remedy_step_needs_the_permission_of_the_page_it_replaces(canary_failing, client, django_user_model):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("dlq-only", password="pw-dlq-only-1", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="queueing", codename__in=["view_jobattempt", "change_deadjob"]))
    client.force_login(staff)
    key = failure_clusters()[0].key
    page = client.get(_remedy_url(key)).content.decode()
    assert 'name="rollback" disabled' in page
    assert client.post(_remedy_url(key), {"rollback": "on", "requeue": "on"}).status_code == 403
    assert Channel.objects.get(name="stable").current.version == "1.1.0"
    assert client.post(_remedy_url(key), {"requeue": "on"}).status_code == 302
    assert [row.action for row in StaffAction.objects.filter(actor_name="dlq-only")] == ["dlq.requeue"]
